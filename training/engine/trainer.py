"""The trainer: AdamW, warm-up + cosine learning rate, gradient clipping, class weighting,
early stopping on validation UA, augmentation, cooperative cancellation, best/last
checkpoints and exact resume.

Progress reaches the caller through one callback that receives plain dicts:
``{"type": "progress", ...}`` every few batches and ``{"type": "epoch", ...}`` after every
epoch (see :meth:`Trainer.fit`), and ``{"type": "resumed", ...}`` once when a run resumes.
The web app forwards exactly these to the browser.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recognition.engine import ENGINE_VERSION
from recognition.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from recognition.engine.config import known_fields
from recognition.engine.features import FeatureConfig, FeatureExtractor, FeatureStats
from recognition.engine.model import EmotionNet, ModelConfig

from .adversary import SpeakerAdversary, reversal_strength, speaker_index, speaker_targets
from .data import (
    AugmentConfig,
    Example,
    augment_waveform,
    batches_of,
    bucket_batches,
    collate,
    collate_centres,
    speaker_centres_at_speeds,
    spec_augment,
    warp_frequencies,
)
from .evaluation import evaluate_examples, example_probabilities, score_probabilities
from .splits import member_validation_splits, natural_key

__all__ = ["TrainConfig", "Trainer", "TrainResult", "pick_device"]

Callback = Callable[[dict[str, Any]], None]

MAX_MEMBERS = 8


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyperparameters. ``patience=0`` disables early stopping."""

    # 80, not 50: with 50 most models were still improving when the cosine schedule ended;
    # RAVDESS six folds, seed 1, 0.614 -> 0.638 UA on one machine, 0.637 on another (bench/RESULTS.md).
    epochs: int = 80
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.02
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    # Mixup (0 = off): each batch is blended with a shuffled copy of itself, weight
    # lambda ~ Beta(alpha, alpha), and the loss blends the two targets alike. Off by default:
    # with label smoothing and more masking it did not raise RAVDESS 6-fold UA (bench/RESULTS.md).
    mixup_alpha: float = 0.0
    # Exponential moving average of the weights (0 = off): the averaged model is what gets
    # validated and saved; it is smoother than the raw weights, so selection is less noisy.
    # The decay ramps up over the first steps, so short runs are not held back.
    ema_decay: float = 0.0
    # Speaker-normalised features only: this share of the training examples is centred on its
    # own mean instead of its speaker's, so the model also meets what a lone recording gets
    # at inference (no speaker mean yet). On RAVDESS folds 1-2 0.3 raised UA with speaker
    # means from 0.617 to 0.660 and for lone recordings from 0.516 to 0.607 (bench/RESULTS.md).
    own_centre_share: float = 0.3
    # Speaker-normalised features only: centre a speed-changed training example on its
    # speaker's mean at that speed (the speaker as the augmentation makes them sound), as a
    # test speaker is centred on their own mean, instead of on the mean at 1.0. Off: on RAVDESS
    # three such models at every speed scored 0.663 and 0.632 on two seeds, the same as the
    # five-model default (0.655, 0.637; bench/RESULTS.md, "Not adopted").
    speed_centres: bool = False
    # Seed ensemble: train this many models one after another (seeds seed, seed + 1, ...) and
    # average their probabilities. Costs that many times the training time; the app asks
    # every model at every trained speed up to nine passes, else each model once
    # (recognition.engine.tta.inference_speeds).
    members: int = 1
    # Seed ensembles: each model after the first validates on other speakers (drawn from the
    # first model's training speakers) and trains on the rest, so the ensemble learns from
    # every speaker outside the test set (splits.member_validation_splits). Its validation
    # scores are then out of bag: each utterance scored by the models that did not train on it.
    rotate_validation: bool = False
    # Seed ensembles: after the models, train one more (the student) on their averaged class
    # probabilities as soft targets, and save it alone as the run's model (one pass per speed
    # instead of one per model); the ensemble stays beside it as teacher.pt. The weight of
    # the soft targets in the loss (0 = off); the hard labels get the rest.
    distil_weight: float = 0.0
    # Softens the teacher's and the student's distributions alike before they are compared
    # (the soft-target loss is scaled by its square, so its gradients keep their size).
    distil_temperature: float = 2.0
    # Speaker-adversarial training (0 = off): a small head learns to tell the training speakers
    # apart from the pooled utterance vector, and its gradient reaches the network reversed and
    # scaled by this weight (ramped up from 0 over the run), pushing the network to leave out
    # who is speaking (training.engine.adversary). Needs two or more known training speakers.
    # Off: at 1.0 it lowered RAVDESS UA on folds 1-4 (five models 0.651 against 0.664, seed 4;
    # bench/RESULTS.md, "Not adopted").
    speaker_adversarial: float = 0.0
    class_weighting: bool = True
    balanced_sampling: bool = False
    patience: int = 15
    seed: int = 0
    device: str = "auto"
    num_threads: int = 0
    progress_every: int = 10
    eval_batch_size: int = 64
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.members <= MAX_MEMBERS:
            raise ValueError(f"members must be between 1 and {MAX_MEMBERS}")
        if not 0.0 <= self.distil_weight <= 1.0:
            raise ValueError("distil_weight must be between 0 and 1")
        if self.distil_temperature <= 0:
            raise ValueError("distil_temperature must be positive")
        if not 0.0 <= self.speaker_adversarial <= 10.0:
            raise ValueError("speaker_adversarial must be between 0 and 10")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["augment"] = self.augment.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = known_fields(cls, data, "training settings")
        if isinstance(data.get("augment"), dict):
            data["augment"] = AugmentConfig.from_dict(data["augment"])
        return cls(**data)


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    best_metrics: dict
    history: list[dict]
    stopped: str  # "completed" | "early_stopping" | "cancelled"
    members: list[TrainResult] = field(default_factory=list)  # a seed ensemble's, in order
    teacher_path: Path | None = None  # a distilled ensemble's teacher (best_path is the student)


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
    ) -> None:
        if model_config.n_classes != len(labels) or model_config.n_features != feature_config.n_features:
            raise ValueError("model config does not match the labels or the feature config")
        if train_config.augment.enabled and train_config.augment.freq_warp > 0 and feature_config.kind != "logmel":
            raise ValueError("frequency warping (freq_warp) needs log-Mel features")
        self.labels = list(labels)
        self.feature_config = feature_config
        self.model_config = model_config
        self.config = train_config
        self.out_dir = Path(out_dir)
        self.callback = callback or (lambda event: None)
        self.should_stop = should_stop or (lambda: False)
        self.metadata = metadata or {}
        self.device = pick_device(train_config.device)
        self.best_path = self.out_dir / "best.pt"
        self.last_path = self.out_dir / "last.pt"

    # -- setup -------------------------------------------------------------------------
    def _class_weights(self, train: Sequence[Example]) -> torch.Tensor | None:
        if not self.config.class_weighting:
            return None
        counts = np.bincount([e.label for e in train], minlength=len(self.labels)).astype(np.float64)
        weights = np.where(counts > 0, counts.sum() / (len(self.labels) * np.maximum(counts, 1)), 0.0)
        return torch.tensor(weights, dtype=torch.float32)

    def _feature_stats(self, extractor: FeatureExtractor, train: Sequence[Example]) -> FeatureStats:
        def frames():
            with torch.inference_mode():
                for idx in batches_of(train, 64):
                    waves, lengths = collate([train[i].waveform for i in idx])
                    centres = collate_centres([train[i] for i in idx], self.feature_config)
                    feats, flen = extractor.raw(waves.to(self.device), lengths.to(self.device), centres)
                    for b in range(feats.shape[0]):
                        yield feats[b, : flen[b]].cpu()

        return FeatureStats.accumulate(frames())

    def _epoch_indices(self, train: Sequence[Example], rng: np.random.Generator) -> np.ndarray:
        if not self.config.balanced_sampling:
            return np.arange(len(train))
        # Every (corpus, class) cell gets the same expected share of the epoch.
        cells = [(e.corpus, e.label) for e in train]
        counts: dict[tuple[str, int], int] = {}
        for c in cells:
            counts[c] = counts.get(c, 0) + 1
        p = np.array([1.0 / counts[c] for c in cells])
        return rng.choice(len(train), size=len(train), replace=True, p=p / p.sum())

    def _lr_at(self, step: int, total: int, steps_per_epoch: int) -> float:
        cfg = self.config
        warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))
        if step < warm:
            return cfg.lr * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        floor = cfg.lr * cfg.min_lr_ratio
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

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

        Callback events:
            progress: ``epoch``, ``epochs``, ``batch``, ``batches``, ``progress`` (0–1 over the
                whole run), ``train_loss`` (running mean of the epoch so far).
            epoch: ``epoch``, ``epochs``, ``progress``, ``train_loss``, ``train_acc``, ``val_loss``, ``wa``, ``ua``,
                ``macro_f1``, ``confusion`` (true × predicted counts), ``per_class_recall``, ``lr``,
                ``duration`` (s), ``best_ua``, ``best_epoch``, ``is_best``.
            resumed: ``epoch`` (epochs already done) and ``history`` (their ``epoch`` events, as
                stored in ``last.pt``). Sent on resume, before any new epoch: a caller killed
                between writing ``last.pt`` and delivering the epoch event fills the gap from it.

        With ``members > 1`` every event also carries ``member`` (1-based) and ``members``;
        ``epoch`` numbering restarts with each member, while ``progress`` spans the whole
        ensemble.
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
                return self._fit_ensemble(train, valid, resume)
            return self._fit(train, valid, resume, teacher=teacher)
        finally:
            torch.set_num_threads(previous_threads)

    def _fit_ensemble(self, train: Sequence[Example], valid: list[Example], resume: bool) -> TrainResult:
        """Train the members in turn (each resumes or restarts on its own), then save them
        together as ``best.pt``, validated as the ensemble. A cancelled run keeps the
        members trained so far (the cancelled one with its best weights yet)."""
        cfg = self.config
        if not resume:
            self.best_path.unlink(missing_ok=True)
            (self.out_dir / "teacher.pt").unlink(missing_ok=True)
        splits = self._member_splits(train, valid)
        results: list[TrainResult] = []
        for index in range(cfg.members):
            member = Trainer(
                labels=self.labels,
                feature_config=self.feature_config,
                model_config=self.model_config,
                train_config=replace(cfg, seed=cfg.seed + index, members=1),
                out_dir=self.out_dir / f"member{index + 1}",
                callback=self._member_callback(index),
                should_stop=self.should_stop,
                metadata=self.metadata,
            )
            results.append(member._fit(*splits[index], resume, stats_from=train))
            if results[-1].stopped == "cancelled":
                break
        checkpoints = [load_checkpoint(r.best_path) for r in results]
        first = checkpoints[0]
        # Every member normalises with statistics of the same (the first model's) training set:
        # one set serves all.
        for ck in checkpoints[1:]:
            if not (torch.allclose(ck.stats.mean, first.stats.mean) and torch.allclose(ck.stats.std, first.stats.std)):
                raise RuntimeError("the ensemble's members computed different feature statistics")
        combined = replace(first, member_states=[ck.state_dict for ck in checkpoints[1:]])
        rotated = any(held is not valid for _, held in splits)
        if rotated:
            metrics = self._out_of_bag(checkpoints, splits[: len(results)])
        else:
            model = combined.build_model(self.device)
            metrics = evaluate_examples(model, combined.build_extractor(self.device), valid, self.labels, batch_size=cfg.eval_batch_size)
        members = [{"seed": cfg.seed + i, "best_epoch": r.best_epoch, "epochs_run": len(r.history), "stopped": r.stopped,
                    "validation_ua": r.best_metrics.get("ua")} for i, r in enumerate(results)]
        if rotated:
            for info, (_, held) in zip(members, splits, strict=False):
                info["validation_speakers"] = sorted({f"{e.corpus}/{e.speaker}" for e in held}, key=natural_key)
        best_metrics = {**_brief(metrics), "members": len(results)}
        combined.metrics = {"validation": best_metrics}
        combined.extra = {"train_config": cfg.to_dict(), **self.metadata, "members": members}
        history = [{**record, "member": i + 1, "members": self._trainees} for i, r in enumerate(results) for record in r.history]
        cancelled = results[-1].stopped == "cancelled"
        if cfg.distil_weight <= 0 or cancelled:
            save_checkpoint(self.best_path, combined)
            return TrainResult(self.best_path, results[-1].last_path, results[0].best_epoch, best_metrics, history,
                               "cancelled" if cancelled else "completed", results)
        return self._distil(combined, splits[0], resume, history, results)

    @property
    def _trainees(self) -> int:
        """Models this run trains: the ensemble's, plus the student when it distils."""
        cfg = self.config
        return cfg.members + (1 if cfg.members > 1 and cfg.distil_weight > 0 else 0)

    def _distil(self, teacher: Checkpoint, split: tuple[list[Example], list[Example]], resume: bool,
                history: list[dict], results: list[TrainResult]) -> TrainResult:
        """Train the student on the ensemble ``teacher``'s soft targets (the first model's split
        and statistics) and save it alone as ``best.pt``; the ensemble goes to ``teacher.pt``.
        Cancelled, the run keeps the ensemble as ``best.pt``; resume continues the student."""
        cfg = self.config
        teacher_path = self.out_dir / "teacher.pt"
        save_checkpoint(teacher_path, teacher)
        index = cfg.members
        student = Trainer(
            labels=self.labels,
            feature_config=self.feature_config,
            model_config=self.model_config,
            train_config=replace(cfg, seed=cfg.seed + index, members=1),
            out_dir=self.out_dir / "student",
            callback=self._member_callback(index),
            should_stop=self.should_stop,
            metadata=self.metadata,
        )
        result = student._fit(*split, resume, stats_from=split[0], teacher=teacher)
        history = history + [{**record, "member": index + 1, "members": self._trainees} for record in result.history]
        if result.stopped == "cancelled":
            save_checkpoint(self.best_path, teacher)
            return TrainResult(self.best_path, result.last_path, results[0].best_epoch, teacher.metrics["validation"], history,
                               "cancelled", results, teacher_path)
        ck = load_checkpoint(result.best_path)
        ck.extra = {**ck.extra, "train_config": cfg.to_dict(), "student": {"seed": cfg.seed + index},
                    "teacher": {"members": teacher.extra["members"], "validation": teacher.metrics["validation"]}}
        save_checkpoint(self.best_path, ck)
        return TrainResult(self.best_path, result.last_path, result.best_epoch, result.best_metrics, history, result.stopped,
                           results, teacher_path)

    def _member_splits(self, train: Sequence[Example], valid: list[Example]) -> list[tuple[list[Example], list[Example]]]:
        """Each member's (train, valid): the given split for all, or rotated validation speakers."""
        shared = [(list(train), valid)] * self.config.members
        if not self.config.rotate_validation or self.config.members == 1:
            return shared
        pool = [*train, *valid]
        marks = [False] * len(train) + [True] * len(valid)
        rotated = member_validation_splits(
            [e.corpus for e in pool], [e.speaker for e in pool], marks, self.config.members, self.config.seed
        )
        if rotated is None:
            return shared
        return [(list(train), valid)] + [([pool[i] for i in t], [pool[i] for i in v]) for t, v in rotated[1:]]

    def _out_of_bag(self, checkpoints: list[Checkpoint], splits: list[tuple[list[Example], list[Example]]]) -> dict:
        """Validation scores of a rotated ensemble: every member's validation utterances,
        each scored by the mean of the members that held it out (so none has trained on it)."""
        index: dict[int, int] = {}
        pool: list[Example] = []
        for _, held in splits:
            for e in held:
                if id(e) not in index:
                    index[id(e)] = len(pool)
                    pool.append(e)
        total = torch.zeros(len(pool), len(self.labels), dtype=torch.float64)
        count = torch.zeros(len(pool), 1, dtype=torch.float64)
        for ck, (_, held) in zip(checkpoints, splits, strict=True):
            model = ck.build_model(self.device).eval()
            rows = torch.tensor([index[id(e)] for e in held])
            total[rows] += example_probabilities(model, ck.build_extractor(self.device), held, batch_size=self.config.eval_batch_size)
            count[rows] += 1
        return score_probabilities(total / count, pool, self.labels)

    def _teacher(self, teacher: Checkpoint) -> tuple[FeatureExtractor, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """The teacher's front end (its own normalisation) and ``(features, lengths) -> (batch,
        classes)``: its class probabilities, softened by the distillation temperature."""
        if teacher.labels != self.labels or teacher.feature_config != self.feature_config:
            raise ValueError("the teacher was trained on other labels or features; it cannot teach this model")
        model = teacher.build_model(self.device).fused()
        temperature = self.config.distil_temperature

        def soft_targets(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            logits, _ = model(feats, lengths)  # an ensemble's: the log of its mean probabilities
            return torch.softmax(logits.float() / temperature, dim=1)

        return teacher.build_extractor(self.device), soft_targets

    def _member_callback(self, index: int) -> Callback:
        """Tags a member's events with its index; progress spans all members (and the student)."""
        count = self._trainees

        def forward(event: dict[str, Any]) -> None:
            event = {**event, "member": index + 1, "members": count}
            if "progress" in event:
                event["progress"] = (index + event["progress"]) / count
            self.callback(event)

        return forward

    def _fit(self, train: Sequence[Example], valid: list[Example], resume: bool, stats_from: Sequence[Example] | None = None,
             teacher: Checkpoint | None = None) -> TrainResult:
        """One model; with ``teacher`` (a checkpoint of the same labels and front end) its loss
        also matches the teacher's class probabilities on every training batch."""
        # No validation set: model selection falls back to the training data (see fit()).
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)

        extractor = FeatureExtractor(self.feature_config).to(self.device)
        model = EmotionNet(self.model_config).to(self.device)
        speakers = speaker_index(train) if cfg.speaker_adversarial > 0 else {}
        adversary = (
            SpeakerAdversary(2 * self.model_config.lstm_hidden, len(speakers)).to(self.device) if len(speakers) > 1 else None
        )
        trained = list(model.parameters()) + ([] if adversary is None else list(adversary.parameters()))
        optimiser = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = (
            torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=_ema_with_warmup(cfg.ema_decay), use_buffers=True)
            if cfg.ema_decay > 0
            else None
        )
        scored = ema.module if ema is not None else model  # the weights that are validated and saved
        class_weights = self._class_weights(train)
        loss_fn = nn.CrossEntropyLoss(
            weight=None if class_weights is None else class_weights.to(self.device), label_smoothing=cfg.label_smoothing
        )
        teacher_extractor, soft_targets = (None, None) if teacher is None else self._teacher(teacher)
        history: list[dict] = []
        start_epoch, step, best_ua, best_epoch, bad_epochs = 0, 0, -1.0, 0, 0
        best_metrics: dict = {}

        if resume and self.last_path.is_file():
            # RNG states must stay on the CPU; load_state_dict moves weights to the device.
            ck = load_checkpoint(self.last_path, map_location="cpu")
            state = ck.extra.get("trainer") or {}
            if ck.labels != self.labels or ck.model_config != self.model_config or ck.feature_config != self.feature_config:
                raise ValueError("the last checkpoint belongs to a different configuration; cannot resume")
            # Training-only state must be there exactly when this run keeps it, or the optimiser's
            # parameters would not line up with the saved ones.
            for key, kept, option in (("ema", ema, "weight averaging (ema_decay)"), ("adversary", adversary, "speaker_adversarial")):
                if (key in state) != (kept is not None):
                    raise ValueError(f"the last checkpoint was trained {'with' if key in state else 'without'} {option}; "
                                     "resume with the settings it was started with")
            model.load_state_dict(ck.state_dict)
            extractor.set_stats(ck.stats)
            optimiser.load_state_dict(state["optimiser"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            if adversary is not None:
                adversary.load_state_dict(state["adversary"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            best_ua, best_epoch, bad_epochs = float(state["best_ua"]), int(state["best_epoch"]), int(state["bad_epochs"])
            best_metrics, history = dict(state.get("best_metrics") or {}), list(state.get("history") or [])
            rng.bit_generator.state = state["numpy_rng"]
            gen.set_state(state["torch_rng"])
            torch.set_rng_state(state["torch_global_rng"])
            # last.pt is written before the epoch's callback, so a killed caller may have missed
            # the last epoch it holds: give the caller the restored history to fill any gap.
            self.callback({"type": "resumed", "epoch": start_epoch, "history": list(history)})
        else:
            # A fresh run never inherits a previous run's checkpoints from the same folder.
            self.best_path.unlink(missing_ok=True)
            self.last_path.unlink(missing_ok=True)
            extractor.set_stats(self._feature_stats(extractor, train if stats_from is None else stats_from))
        stats = extractor.stats
        # Speed-matched centres: each training speaker's mean at every augmentation speed but 1.0.
        changed = [s for s in cfg.augment.speed if s != 1.0] if cfg.augment.enabled else []
        speaker_normalised = cfg.speed_centres and self.feature_config.speaker_cmn
        speed_centres = speaker_centres_at_speeds(train, extractor, changed) if speaker_normalised else {}

        steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        stopped = "completed"

        def save_last(epoch_done: int) -> None:
            state = {
                "optimiser": optimiser.state_dict(),
                "epoch": epoch_done,
                "step": step,
                "best_ua": best_ua,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "best_metrics": best_metrics,
                "history": history,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": gen.get_state(),
                "torch_global_rng": torch.get_rng_state(),
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            if adversary is not None:
                state["adversary"] = adversary.state_dict()
            save_checkpoint(self.last_path, self._checkpoint(model, stats, best_metrics, {"trainer": state}))

        epoch = start_epoch
        for epoch in range(start_epoch, cfg.epochs):
            if bad_epochs >= cfg.patience > 0:
                stopped = "early_stopping"
                break
            epoch_start = time.perf_counter()
            # Snapshot RNG state at the epoch start so a cancelled epoch restarts identically.
            epoch_rng_state = (rng.bit_generator.state, gen.get_state(), torch.get_rng_state(), step)
            # ... and the weights and optimiser state: last.pt written on cancellation must hold the
            # epoch-start state, or resume would redo this epoch on top of its partial updates.
            epoch_train_state = (
                copy.deepcopy(model.state_dict()),
                copy.deepcopy(optimiser.state_dict()),
                None if ema is None else copy.deepcopy(ema.state_dict()),
                None if adversary is None else copy.deepcopy(adversary.state_dict()),
            )
            model.train()
            if adversary is not None:
                adversary.train()
            order = self._epoch_indices(train, rng)
            augmented = [augment_waveform(train[i].waveform, cfg.augment, rng) for i in order]
            waves = [wave for wave, _ in augmented]
            targets = [train[i].label for i in order]
            batches = bucket_batches([w.size for w in waves], cfg.batch_size, rng, drop_singletons=True)
            loss_sum, correct, seen, cancelled = 0.0, 0, 0, False
            for b, idx in enumerate(batches):
                if self.should_stop():
                    cancelled = True
                    break
                for group in optimiser.param_groups:
                    group["lr"] = self._lr_at(step, total_steps, steps_per_epoch)
                x, lengths = collate([waves[i] for i in idx])
                y = torch.tensor([targets[i] for i in idx], device=self.device)
                centres = collate_centres([train[order[i]] for i in idx], self.feature_config)
                if speed_centres:
                    for row, i in enumerate(idx):
                        example = train[order[i]]
                        at_speed = speed_centres.get((example.corpus, example.speaker, augmented[i][1]))
                        if at_speed is not None:
                            centres[row] = at_speed
                if centres is not None and cfg.own_centre_share > 0:
                    centres[torch.from_numpy(rng.random(len(idx)) < cfg.own_centre_share)] = float("nan")
                with torch.no_grad():
                    feats, flen = extractor(x.to(self.device), lengths.to(self.device), centres)
                    # A teacher sees exactly what the student sees: the same changed audio, centred
                    # alike, with the same SpecAugment masks (the generator replayed) and mixup below.
                    taught = None if teacher_extractor is None else teacher_extractor(x.to(self.device), lengths.to(self.device), centres)[0]
                    if cfg.augment.enabled and cfg.augment.freq_warp > 0:
                        factors = rng.uniform(1.0 - cfg.augment.freq_warp, 1.0 + cfg.augment.freq_warp, len(idx))
                        feats = warp_frequencies(feats, factors, self.feature_config)
                        if taught is not None:  # the teacher has the same features (checked in _teacher)
                            taught = warp_frequencies(taught, factors, self.feature_config)
                    masks = gen.get_state()
                    feats = spec_augment(feats, flen, cfg.augment, gen)
                    if taught is not None:
                        after = gen.get_state()
                        gen.set_state(masks)
                        taught = spec_augment(taught, flen, cfg.augment, gen)
                        gen.set_state(after)
                partner, lam = None, 1.0
                if cfg.mixup_alpha > 0 and len(idx) > 1:
                    feats, flen, partner, lam = _mixup(feats, flen, cfg.mixup_alpha, rng, gen)
                spoken = None
                if adversary is None:
                    logits, _ = model(feats, flen)
                else:
                    context, _ = model.embed(feats, flen)
                    logits = model.classifier(model.dropout(context))
                    # The head learns who speaks at full strength; the reversal scales what the
                    # network gets back. Mixed examples blend their two speakers like their labels.
                    who = adversary(context, reversal_strength(cfg.speaker_adversarial, step / max(1, total_steps)))
                    spk = speaker_targets([train[order[i]] for i in idx], speakers).to(self.device)
                    spoken = nn.functional.cross_entropy(who, spk, ignore_index=-100)
                    if partner is not None:
                        spoken = lam * spoken + (1.0 - lam) * nn.functional.cross_entropy(who, spk[partner], ignore_index=-100)
                loss = loss_fn(logits, y)
                if partner is not None:
                    loss = lam * loss + (1.0 - lam) * loss_fn(logits, y[partner])
                    if taught is not None:
                        taught = taught.mul(lam).add_(taught[partner], alpha=1.0 - lam)
                if taught is not None:
                    with torch.no_grad():
                        soft = soft_targets(taught, flen)
                    weights = None if class_weights is None else class_weights.to(self.device)[y]
                    loss = (1.0 - cfg.distil_weight) * loss + cfg.distil_weight * _distillation_loss(logits, soft, cfg.distil_temperature, weights)
                optimiser.zero_grad(set_to_none=True)
                (loss if spoken is None else loss + spoken).backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimiser.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                if (b + 1) % max(1, cfg.progress_every) == 0 or b + 1 == len(batches):
                    self.callback({
                        "type": "progress",
                        "epoch": epoch + 1,
                        "epochs": cfg.epochs,
                        "batch": b + 1,
                        "batches": len(batches),
                        "progress": (epoch + (b + 1) / len(batches)) / cfg.epochs,
                        "train_loss": loss_sum / max(1, seen),
                    })
            if cancelled:
                stopped = "cancelled"
                rng.bit_generator.state, s_gen, s_global, step = epoch_rng_state
                gen.set_state(s_gen)
                torch.set_rng_state(s_global)
                if not self.best_path.is_file():
                    # Nothing selected yet: the current weights still make a usable model.
                    metrics = evaluate_examples(scored, extractor, valid, self.labels, batch_size=cfg.eval_batch_size)
                    best_metrics = {"epoch": epoch, **_brief(metrics)}
                    save_checkpoint(self.best_path, self._checkpoint(scored, stats, {"validation": best_metrics}, {}))
                model.load_state_dict(epoch_train_state[0])
                optimiser.load_state_dict(epoch_train_state[1])
                if ema is not None:
                    ema.load_state_dict(epoch_train_state[2])
                if adversary is not None:
                    adversary.load_state_dict(epoch_train_state[3])
                save_last(epoch)
                break

            metrics = evaluate_examples(scored, extractor, valid, self.labels, batch_size=cfg.eval_batch_size, class_weights=class_weights)
            is_best = metrics["ua"] > best_ua
            if is_best:
                best_ua, best_epoch, bad_epochs = metrics["ua"], epoch + 1, 0
                best_metrics = {"epoch": epoch + 1, **_brief(metrics)}
                save_checkpoint(self.best_path, self._checkpoint(scored, stats, {"validation": best_metrics}, {}))
            else:
                bad_epochs += 1
            record = {
                "type": "epoch",
                "epoch": epoch + 1,
                "epochs": cfg.epochs,
                "progress": (epoch + 1) / cfg.epochs,
                "train_loss": loss_sum / max(1, seen),
                "train_acc": correct / max(1, seen),
                "val_loss": metrics["loss"],
                "wa": metrics["wa"],
                "ua": metrics["ua"],
                "macro_f1": metrics["macro_f1"],
                "confusion": metrics["confusion"],
                "per_class_recall": {k: v["recall"] for k, v in metrics["per_class"].items()},
                "lr": optimiser.param_groups[0]["lr"],
                "duration": time.perf_counter() - epoch_start,
                "best_ua": best_ua,
                "best_epoch": best_epoch,
                "is_best": is_best,
            }
            history.append(record)
            save_last(epoch + 1)
            self.callback(record)
        else:
            epoch = cfg.epochs
        if stopped == "completed" and bad_epochs >= cfg.patience > 0 and epoch < cfg.epochs:
            stopped = "early_stopping"
        return TrainResult(self.best_path, self.last_path, best_epoch, best_metrics, history, stopped)


def _distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float, weights: torch.Tensor | None) -> torch.Tensor:
    """KL divergence from the teacher's softened probabilities ``soft`` ``(batch, classes)`` to
    the student's ``logits`` ``(batch, classes)`` softened alike, times the temperature squared;
    averaged over the batch with the same class weights as the cross-entropy (by hard label)."""
    log_student = torch.log_softmax(logits.float() / temperature, dim=1)
    per_example = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(dim=1) * temperature**2
    if weights is None:
        return per_example.mean()
    return (weights * per_example).sum() / weights.sum()


def _ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """EMA update whose decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates.

    A fixed 0.995 would keep most of the random initial weights for hundreds of steps, so a
    small corpus (a few steps per epoch) would validate a model that has barely moved.
    """

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # integer buffers (BatchNorm's batch counter): follow
            torch._foreach_copy_(averaged, current)
            return
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return update


def _mixup(
    feats: torch.Tensor, lengths: torch.Tensor, alpha: float, rng: np.random.Generator, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Blend a batch with a permutation of itself.

    feats ``(batch, frames, n_features)`` (padded frames are 0); lengths ``(batch,)``.
    Returns the mixed features, the longer of each pair's lengths, the permutation
    ``(batch,)`` (on the features' device) and lambda, the weight of the original rows.
    """
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)  # the original row dominates, so its length and label stay the main ones
    partner = torch.randperm(feats.shape[0], generator=gen).to(feats.device)  # the CPU generator is saved for resume
    mixed = feats.mul(lam).add_(feats[partner], alpha=1.0 - lam)
    return mixed, torch.maximum(lengths, lengths[partner]), partner, lam


def _brief(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("wa", "ua", "macro_f1", "loss", "confusion", "n")}
