"""The trainer: AdamW, warm-up + cosine learning rate, gradient clipping, class weighting,
early stopping on validation UA, augmentation, cooperative cancellation, best/last
checkpoints and exact resume. Progress reaches the caller through one callback (see
:meth:`Trainer.fit`); seed ensembles and distillation are in :mod:`.ensemble`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recognition.engine import ENGINE_VERSION
from recognition.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from recognition.engine.feature_stats import pad_batch
from recognition.engine.features import FeatureConfig, FeatureExtractor, FeatureStats
from recognition.engine.model import EmotionNet, ModelConfig

from .config import TrainConfig, TrainResult
from .data import (
    Example,
    augment_waveform,
    bucket_batches,
    class_weights,
    collate_centres,
    epoch_order,
    feature_stats,
    spec_augment,
)
from .ensemble import distillation_loss, fit_ensemble, teacher_targets, trainees
from .evaluation import brief_metrics, evaluate_examples
from .events import BatchProgress, Callback, EpochReport, Place, Resumed

__all__ = ["TrainConfig", "Trainer", "TrainResult", "pick_device"]



def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Trains one :class:`EmotionNet` on in-memory :class:`Example` lists.

    Writes ``best.pt`` (highest validation UA) and ``last.pt`` (full trainer state, for
    resume) into ``out_dir``. With ``members > 1`` each member trains in ``out_dir/memberN``
    as a one-model run of its own, and ``best.pt`` holds them all (a seed ensemble).
    """

    def __init__(
        self,
        *,
        labels: Sequence[str],
        feature_config: FeatureConfig,
        model_config: ModelConfig,
        train_config: TrainConfig,
        out_dir: str | os.PathLike,
        callback: Callback | None = None,
        should_stop: Callable[[], bool] | None = None,
        metadata: dict | None = None,
        place: Place | None = None,
    ) -> None:
        if model_config.n_classes != len(labels) or model_config.n_features != feature_config.n_features:
            raise ValueError("model config does not match the labels or the feature config")
        if model_config.encoder_layers != feature_config.encoder_layers:
            raise ValueError("the model's front end does not match the features (encoder layers)")
        aug = train_config.augment
        if feature_config.encoder_layers and aug.enabled and (set(aug.speed) - {1.0} or aug.gain_db or aug.noise_prob):
            raise ValueError("an encoder front end trains on cached states: waveform augmentation (speed, gain, noise) "
                             "does not apply; use time and channel masks (augment speed [1.0], gain_db 0, noise_prob 0)")
        self.labels = list(labels)
        self.feature_config = feature_config
        self.model_config = model_config
        self.config = train_config
        self.out_dir = Path(out_dir)
        self.callback = callback or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.metadata = metadata or {}
        self.place = place or Place()  # where its events say they are: fold of folds, model of models
        self.device = pick_device(train_config.device)
        self.best_path = self.out_dir / "best.pt"
        self.last_path = self.out_dir / "last.pt"

    def _checkpoint(self, model: EmotionNet, stats: FeatureStats, metrics: dict, extra: dict) -> Checkpoint:
        return Checkpoint(
            model_config=self.model_config,
            feature_config=self.feature_config,
            labels=self.labels,
            stats=stats,
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            metrics=metrics,
            extra={"train_config": self.config.to_dict(), **self.metadata, **extra},
            engine_version=ENGINE_VERSION,
        )

    # -- training ----------------------------------------------------------------------
    def fit(self, train: Sequence[Example], valid: Sequence[Example], *, resume: bool = False,
            teacher: Checkpoint | None = None) -> TrainResult:
        """Train, validating after every epoch.

        ``teacher`` (one model, ``distil_weight`` > 0): distil that checkpoint, trained on the
        same labels and front end, into this model. Seed ensembles with ``distil_weight`` > 0
        distil themselves (see :class:`TrainConfig`).

        The callback gets :mod:`.events`: :class:`BatchProgress` every ``progress_every``
        batches, an :class:`EpochReport` after every epoch, :class:`Resumed` once on resume.
        A seed ensemble's models report as models ``1..members`` of the run's :class:`Place`.
        """
        if not train:
            raise ValueError("no training examples")
        if teacher is not None and (self.config.members > 1 or self.config.distil_weight <= 0):
            raise ValueError("a teacher needs a one-model run with distil_weight above 0")
        if teacher is None and self.config.members == 1 and self.config.distil_weight > 0:
            raise ValueError("distilling one model needs a teacher checkpoint (or members >= 2 to train one)")
        previous_threads = torch.get_num_threads()
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        try:
            valid = list(valid) if valid else list(train)
            if self.config.members > 1:
                return fit_ensemble(self, list(train), valid, resume)
            return self.fit_model(list(train), valid, resume, teacher=teacher)
        finally:
            torch.set_num_threads(previous_threads)

    def member(self, index: int, folder: str) -> Trainer:
        """The one-model trainer of an ensemble's model ``index`` (0-based; the student after
        the members), seeded ``seed + index``, writing into ``out_dir/folder``."""
        cfg = self.config
        place = replace(self.place, member=index + 1, members=trainees(cfg.members, cfg.distil_weight))
        return Trainer(labels=self.labels, feature_config=self.feature_config, model_config=self.model_config,
                       train_config=replace(cfg, seed=cfg.seed + index, members=1), out_dir=self.out_dir / folder,
                       callback=self.callback, should_stop=self.should_stop, metadata=self.metadata, place=place)

    def fit_model(self, train: list[Example], valid: list[Example], resume: bool, teacher: Checkpoint | None = None) -> TrainResult:
        """One model; with ``teacher`` (a checkpoint of the same labels and front end) its loss
        also matches the teacher's class probabilities on every training batch."""
        run = self._setup(train, teacher)
        if resume and self.last_path.is_file():
            self._resume(run)
        else:
            # A fresh run never inherits a previous run's checkpoints from the same folder.
            self.best_path.unlink(missing_ok=True)
            self.last_path.unlink(missing_ok=True)
            run.extractor.set_stats(feature_stats(run.extractor, train))
        run.stats = run.extractor.stats
        stopped = "completed"
        while run.epoch < self.config.epochs:
            if run.bad_epochs >= self.config.patience > 0:
                stopped = "early_stopping"
                break
            started = time.perf_counter()
            at_start = _EpochStart.take(run)
            totals = self._train_epoch(run, train)
            if totals is None:
                self._cancel(run, at_start, valid)
                stopped = "cancelled"
                break
            self._validate_and_save(run, valid, totals, started)
        return TrainResult(self.best_path, self.last_path, run.best_epoch, run.best_metrics, run.history, stopped)

    def _setup(self, train: Sequence[Example], teacher: Checkpoint | None) -> _Run:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model = EmotionNet(self.model_config).to(self.device)
        weights = class_weights(train, len(self.labels)) if cfg.class_weighting else None
        return _Run(
            model=model,
            extractor=FeatureExtractor(self.feature_config).to(self.device),
            optimiser=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            loss_fn=nn.CrossEntropyLoss(
                weight=None if weights is None else weights.to(self.device), label_smoothing=cfg.label_smoothing
            ),
            class_weights=weights,
            rng=np.random.default_rng(cfg.seed),
            gen=torch.Generator().manual_seed(cfg.seed),
            teacher=None if teacher is None else teacher_targets(teacher, self, self.device),
        )

    def _resume(self, run: _Run) -> None:
        """Restore weights, optimiser, counters, history and random states from ``last.pt``."""
        # RNG states must stay on the CPU; load_state_dict moves weights to the device.
        ck = load_checkpoint(self.last_path, map_location="cpu")
        state = ck.extra.get("trainer") or {}
        if ck.labels != self.labels or ck.model_config != self.model_config or ck.feature_config != self.feature_config:
            raise ValueError("the last checkpoint belongs to a different configuration; cannot resume")
        retired = sorted({"ema", "adversary"} & set(state))  # ema_decay and speaker_adversarial, since removed
        if retired:
            raise ValueError(f"the last checkpoint was trained with an option this version no longer has ({', '.join(retired)}); "
                             "it cannot be resumed, start the run afresh")
        run.model.load_state_dict(ck.state_dict)
        run.extractor.set_stats(ck.stats)
        run.optimiser.load_state_dict(state["optimiser"])
        run.epoch, run.step = int(state["epoch"]), int(state["step"])
        run.best_ua, run.best_epoch, run.bad_epochs = float(state["best_ua"]), int(state["best_epoch"]), int(state["bad_epochs"])
        run.best_metrics = dict(state.get("best_metrics") or {})
        # Stored as payloads; this trainer's place, as older records carried none.
        run.history = [EpochReport.from_payload({**record, **vars(self.place)}) for record in state.get("history") or []]
        run.rng.bit_generator.state = state["numpy_rng"]
        run.gen.set_state(state["torch_rng"])
        torch.set_rng_state(state["torch_global_rng"])
        # last.pt is written before the epoch's callback, so a killed caller may have missed
        # the last epoch it holds: give the caller the restored history to fill any gap.
        self.callback(Resumed(**vars(self.place), epoch=run.epoch, history=tuple(run.history)))

    def _train_epoch(self, run: _Run, train: Sequence[Example]) -> tuple[float, float] | None:
        """One pass over the (augmented) training set. Returns the mean training loss and
        accuracy, or None when cancelled part-way (the caller restores the epoch's start)."""
        cfg = self.config
        run.model.train()
        order = epoch_order(train, run.rng, balanced=cfg.balanced_sampling)
        # Cached encoder states are read as they are; waveforms get their augmentation first.
        waves = [train[i].states if train[i].states is not None else augment_waveform(train[i].waveform, cfg.augment, run.rng)
                 for i in order]
        targets = [train[i].label for i in order]
        batches = bucket_batches([w.shape[0] for w in waves], cfg.batch_size, run.rng, drop_singletons=True)
        steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
        loss_sum, correct, seen = 0.0, 0, 0
        for b, idx in enumerate(batches):
            if self.should_stop():
                return None
            for group in run.optimiser.param_groups:
                group["lr"] = cfg.lr_at(run.step, steps_per_epoch)
            x, lengths = pad_batch([waves[i] for i in idx])
            y = torch.tensor([targets[i] for i in idx], device=self.device)
            centres = collate_centres([train[order[i]] for i in idx], self.feature_config)
            if centres is not None and cfg.own_centre_share > 0:
                centres[torch.from_numpy(run.rng.random(len(idx)) < cfg.own_centre_share)] = float("nan")
            logits, loss = self._batch_loss(run, x.to(self.device), lengths.to(self.device), centres, y)
            run.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            run.optimiser.step()
            run.step += 1
            loss_sum += _finite_loss(loss.item(), f"training loss at epoch {run.epoch + 1}, batch {b + 1}") * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            if (b + 1) % max(1, cfg.progress_every) == 0 or b + 1 == len(batches):
                self.callback(BatchProgress(**vars(self.place), epoch=run.epoch + 1, epochs=cfg.epochs, batch=b + 1,
                                            batches=len(batches), train_loss=loss_sum / max(1, seen)))
        return loss_sum / max(1, seen), correct / max(1, seen)

    def _batch_loss(self, run: _Run, x: torch.Tensor, lengths: torch.Tensor, centres: torch.Tensor | None,
                    y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, classes)`` and the loss of one batch of waveforms ``x`` ``(batch,
        samples)`` with ``lengths`` ``(batch,)`` and labels ``y`` ``(batch,)``."""
        cfg = self.config
        with torch.no_grad():
            feats, flen = run.extractor(x, lengths, centres)
            # A teacher sees exactly what the student sees: the same changed audio, centred alike,
            # with the same SpecAugment masks (the generator replayed).
            taught = None if run.teacher is None else run.teacher[0](x, lengths, centres)[0]
            masks = run.gen.get_state()
            feats = spec_augment(feats, flen, cfg.augment, run.gen, layers=self.feature_config.encoder_layers)
            if taught is not None:
                after = run.gen.get_state()
                run.gen.set_state(masks)
                taught = spec_augment(taught, flen, cfg.augment, run.gen, layers=self.feature_config.encoder_layers)
                run.gen.set_state(after)
        logits, _ = run.model(feats, flen)
        loss = run.loss_fn(logits, y)
        if taught is not None:
            with torch.no_grad():
                soft = run.teacher[1](taught, flen)
            weights = None if run.class_weights is None else run.class_weights.to(self.device)[y]
            loss = (1.0 - cfg.distil_weight) * loss + cfg.distil_weight * distillation_loss(logits, soft, cfg.distil_temperature, weights)
        return logits, loss

    def _validate_and_save(self, run: _Run, valid: list[Example], totals: tuple[float, float], started: float) -> None:
        """Score the epoch's weights, keep them as ``best.pt`` when validation UA rose, write
        ``last.pt``, then report the epoch."""
        cfg = self.config
        metrics = evaluate_examples(run.model, run.extractor, valid, self.labels, batch_size=cfg.eval_batch_size,
                                    class_weights=run.class_weights)
        _finite_loss(metrics["loss"], f"validation loss at epoch {run.epoch + 1}")
        run.epoch += 1
        is_best = metrics["ua"] > run.best_ua
        if is_best:
            run.best_ua, run.best_epoch, run.bad_epochs = metrics["ua"], run.epoch, 0
            run.best_metrics = {"epoch": run.epoch, **brief_metrics(metrics)}
            save_checkpoint(self.best_path, self._checkpoint(run.model, run.stats, {"validation": run.best_metrics}, {}))
        else:
            run.bad_epochs += 1
        report = EpochReport(
            **vars(self.place), epoch=run.epoch, epochs=cfg.epochs, train_loss=totals[0], train_acc=totals[1],
            val_loss=metrics["loss"], wa=metrics["wa"], ua=metrics["ua"], macro_f1=metrics["macro_f1"],
            confusion=metrics["confusion"], per_class_recall={k: v["recall"] for k, v in metrics["per_class"].items()},
            lr=run.optimiser.param_groups[0]["lr"], duration=time.perf_counter() - started, is_best=is_best,
        )
        run.history.append(report)
        self._save_last(run)
        self.callback(report)

    def _cancel(self, run: _Run, at_start: _EpochStart, valid: list[Example]) -> None:
        """A cancelled epoch: ``last.pt`` gets the epoch's start, so resume redoes it exactly."""
        run.rng.bit_generator.state, step = at_start.numpy_rng, at_start.step
        run.gen.set_state(at_start.torch_rng)
        torch.set_rng_state(at_start.torch_global_rng)
        run.step = step
        if not self.best_path.is_file():
            # Nothing selected yet: the current weights still make a usable model.
            metrics = evaluate_examples(run.model, run.extractor, valid, self.labels, batch_size=self.config.eval_batch_size)
            run.best_metrics = {"epoch": run.epoch, **brief_metrics(metrics)}
            save_checkpoint(self.best_path, self._checkpoint(run.model, run.stats, {"validation": run.best_metrics}, {}))
        run.model.load_state_dict(at_start.weights)
        run.optimiser.load_state_dict(at_start.optimiser)
        self._save_last(run)

    def _save_last(self, run: _Run) -> None:
        state = {
            "optimiser": run.optimiser.state_dict(),
            "epoch": run.epoch,
            "step": run.step,
            "best_ua": run.best_ua,
            "best_epoch": run.best_epoch,
            "bad_epochs": run.bad_epochs,
            "best_metrics": run.best_metrics,
            "history": [report.to_payload() for report in run.history],
            "numpy_rng": run.rng.bit_generator.state,
            "torch_rng": run.gen.get_state(),
            "torch_global_rng": torch.get_rng_state(),
        }
        save_checkpoint(self.last_path, self._checkpoint(run.model, run.stats, run.best_metrics, {"trainer": state}))


class NonFiniteLossError(ArithmeticError):
    """The loss became NaN or infinite: the weights are lost, the run cannot go on."""


def _finite_loss(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"The {where} is {value}: training cannot go on. Lower the learning rate, or check the corpora for "
            "unusable audio."
        )
    return value


@dataclass
class _Run:
    """One model's training state: what ``last.pt`` keeps and resume restores, and what the
    epochs share. ``teacher``: the teacher's front end and its soft targets, when distilling."""

    model: EmotionNet
    extractor: FeatureExtractor
    optimiser: torch.optim.Optimizer
    loss_fn: nn.Module
    class_weights: torch.Tensor | None
    rng: np.random.Generator
    gen: torch.Generator
    teacher: tuple[FeatureExtractor, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None
    stats: FeatureStats | None = None
    epoch: int = 0  # epochs done
    step: int = 0
    best_ua: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    best_metrics: dict = field(default_factory=dict)
    history: list[EpochReport] = field(default_factory=list)


@dataclass(frozen=True)
class _EpochStart:
    """Random states, step, weights and optimiser state at an epoch's start: a cancelled epoch
    restarts from them, or resume would redo it on top of its partial updates."""

    numpy_rng: dict
    torch_rng: torch.Tensor
    torch_global_rng: torch.Tensor
    step: int
    weights: dict
    optimiser: dict

    @classmethod
    def take(cls, run: _Run) -> _EpochStart:
        return cls(run.rng.bit_generator.state, run.gen.get_state(), torch.get_rng_state(), run.step,
                   copy.deepcopy(run.model.state_dict()), copy.deepcopy(run.optimiser.state_dict()))
