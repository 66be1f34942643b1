"""Seed ensembles and distillation: a run's models trained one after another (seeds seed,
seed + 1, ...) and saved together as one checkpoint, then, when the recipe distils, one more
model (the student) trained on their averaged class probabilities and saved alone."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from recognition.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from recognition.engine.features import FeatureExtractor

from .config import TrainResult
from .data import Example
from .evaluation import brief_metrics, evaluate_examples
from .events import EpochReport

if TYPE_CHECKING:
    from .trainer import Trainer  # the trainer imports this module; it only passes itself in

__all__ = ["combine_checkpoints", "distillation_loss", "fit_ensemble", "teacher_targets", "trainees"]

SoftTargets = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def trainees(members: int, distil_weight: float) -> int:
    """Models a run trains: the ensemble's, plus the student when it distils."""
    return members + (1 if members > 1 and distil_weight > 0 else 0)


def combine_checkpoints(paths: Sequence[str | os.PathLike]) -> Checkpoint:
    """The one-model checkpoints at ``paths``, members of one seed ensemble, as one checkpoint
    (the first's settings, statistics and extras; one path gives that checkpoint as it is)."""
    checkpoints = [load_checkpoint(p) for p in paths]
    if any(ck.n_members != 1 for ck in checkpoints):
        raise ValueError("an ensemble is combined from one-model checkpoints")
    first = checkpoints[0]
    # Every member normalises with statistics of the same training set: one set serves all.
    for ck in checkpoints[1:]:
        if not (torch.allclose(ck.stats.mean, first.stats.mean) and torch.allclose(ck.stats.std, first.stats.std)):
            raise RuntimeError("the ensemble's members computed different feature statistics")
    return replace(first, member_states=[ck.state_dict for ck in checkpoints[1:]]) if len(checkpoints) > 1 else first


def fit_ensemble(trainer: Trainer, train: list[Example], valid: list[Example], resume: bool) -> TrainResult:
    """Train ``trainer``'s members in turn (each resumes or restarts on its own), then save them
    together as its ``best.pt``, validated as the ensemble. A cancelled run keeps the members
    trained so far (the cancelled one with its best weights yet)."""
    cfg = trainer.config
    if not resume:
        trainer.best_path.unlink(missing_ok=True)
        (trainer.out_dir / "teacher.pt").unlink(missing_ok=True)
    results: list[TrainResult] = []
    for index in range(cfg.members):
        results.append(trainer.member(index, f"member{index + 1}").fit_model(train, valid, resume))
        if results[-1].stopped == "cancelled":
            break
    combined = combine_checkpoints([r.best_path for r in results])
    model, extractor = combined.build_model(trainer.device), combined.build_extractor(trainer.device)
    metrics = evaluate_examples(model, extractor, valid, trainer.labels, batch_size=cfg.eval_batch_size)
    members = [{"seed": cfg.seed + i, "best_epoch": r.best_epoch, "epochs_run": len(r.history), "stopped": r.stopped,
                "validation_ua": r.best_metrics.get("ua")} for i, r in enumerate(results)]
    best_metrics = {**brief_metrics(metrics), "members": len(results)}
    combined.metrics = {"validation": best_metrics}
    combined.extra = {"train_config": cfg.to_dict(), **trainer.metadata, "members": members}
    history = [report for r in results for report in r.history]
    cancelled = results[-1].stopped == "cancelled"
    if cfg.distil_weight <= 0 or cancelled:
        save_checkpoint(trainer.best_path, combined)
        return TrainResult(trainer.best_path, results[-1].last_path, results[0].best_epoch, best_metrics, history,
                           "cancelled" if cancelled else "completed", results)
    return _distil(trainer, combined, (train, valid), resume, history, results)


def _distil(trainer: Trainer, teacher: Checkpoint, split: tuple[list[Example], list[Example]], resume: bool,
            history: list[EpochReport], results: list[TrainResult]) -> TrainResult:
    """Train the student on the ensemble ``teacher``'s soft targets and save it alone as
    ``best.pt``; the ensemble goes to ``teacher.pt``. Cancelled, the run keeps the ensemble as
    ``best.pt``; resume continues the student."""
    cfg = trainer.config
    teacher_path = trainer.out_dir / "teacher.pt"
    save_checkpoint(teacher_path, teacher)
    result = trainer.member(cfg.members, "student").fit_model(*split, resume, teacher=teacher)
    history = history + result.history
    if result.stopped == "cancelled":
        save_checkpoint(trainer.best_path, teacher)
        return TrainResult(trainer.best_path, result.last_path, results[0].best_epoch, teacher.metrics["validation"], history,
                           "cancelled", results, teacher_path)
    ck = load_checkpoint(result.best_path)
    ck.extra = {**ck.extra, "train_config": cfg.to_dict(), "student": {"seed": cfg.seed + cfg.members},
                "teacher": {"members": teacher.extra["members"], "validation": teacher.metrics["validation"]}}
    save_checkpoint(trainer.best_path, ck)
    return TrainResult(trainer.best_path, result.last_path, result.best_epoch, result.best_metrics, history, result.stopped,
                       results, teacher_path)


def teacher_targets(teacher: Checkpoint, student: Trainer, device: torch.device) -> tuple[FeatureExtractor, SoftTargets]:
    """The teacher's front end (its own normalisation) and ``(features, lengths) -> (batch,
    classes)``: its class probabilities, softened by the student's distillation temperature."""
    if teacher.labels != student.labels or teacher.feature_config != student.feature_config:
        raise ValueError("the teacher was trained on other labels or features; it cannot teach this model")
    model = teacher.build_model(device).fused()
    temperature = student.config.distil_temperature

    def soft_targets(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits, _ = model(feats, lengths)  # an ensemble's: the log of its mean probabilities
        return torch.softmax(logits.float() / temperature, dim=1)

    return teacher.build_extractor(device), soft_targets


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float, weights: torch.Tensor | None) -> torch.Tensor:
    """KL divergence from the teacher's softened probabilities ``soft`` ``(batch, classes)`` to
    the student's ``logits`` ``(batch, classes)`` softened alike, times the temperature squared;
    averaged over the batch with the same class weights as the cross-entropy (by hard label)."""
    log_student = torch.log_softmax(logits.float() / temperature, dim=1)
    per_example = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(dim=1) * temperature**2
    if weights is None:
        return per_example.mean()
    return (weights * per_example).sum() / weights.sum()
