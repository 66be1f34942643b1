"""What a training run is given, the settings it can choose (optimisation, ensembles,
distillation, augmentation; stored in every checkpoint and run), and what it gives back."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recognition.engine.config import known_fields

from .data import AugmentConfig
from .events import EpochReport

__all__ = ["TrainConfig", "TrainResult", "MAX_MEMBERS", "RETIRED"]

MAX_MEMBERS = 8
# Options measured, not adopted and removed (bench/RESULTS.md), with their off values: stored
# recipes and checkpoints that hold them off still load; one that holds them on is refused.
RETIRED = {"mixup_alpha": 0.0, "ema_decay": 0.0, "speed_centres": False, "rotate_validation": False, "speaker_adversarial": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyperparameters. ``patience=0`` disables early stopping."""

    # 80, not 50: with 50 most models were still improving when the cosine schedule ended;
    # more epochs raised RAVDESS UA over six folds (bench/RESULTS.md).
    epochs: int = 80
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.02
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    # Speaker-normalised features only: this share of the training examples is centred as a
    # recording of an unknown speaker is at inference (on itself, or on the population's
    # speaker mean: FeatureConfig.unknown_speaker) instead of on its speaker's mean.
    own_centre_share: float = 0.3
    # Seed ensemble: train this many models one after another (seeds seed, seed + 1, ...) and
    # average their probabilities. Costs that many times the training time; the app asks
    # every model at every trained speed up to nine passes, else each model once
    # (recognition.engine.tta.inference_speeds).
    members: int = 1
    # Seed ensembles: after the models, train one more (the student) on their averaged class
    # probabilities as soft targets, and save it alone as the run's model (one pass per speed
    # instead of one per model); the ensemble stays beside it as teacher.pt. The weight of
    # the soft targets in the loss (0 = off); the hard labels get the rest.
    distil_weight: float = 0.0
    # Softens the teacher's and the student's distributions alike before they are compared
    # (the soft-target loss is scaled by its square, so its gradients keep their size).
    distil_temperature: float = 2.0
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

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate at optimiser ``step``: linear warm-up, then cosine decay to
        ``min_lr_ratio`` of ``lr`` at the last step of ``epochs``."""
        warm = max(1, int(self.warmup_epochs * steps_per_epoch))
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, steps_per_epoch * self.epochs - warm))
        floor = self.lr * self.min_lr_ratio
        return floor + (self.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["augment"] = self.augment.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = known_fields(cls, data, "training settings", retired=RETIRED)
        if isinstance(data.get("augment"), dict):
            data["augment"] = AugmentConfig.from_dict(data["augment"])
        return cls(**data)


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    best_epoch: int
    best_metrics: dict
    history: list[EpochReport]  # every model's epochs, in the order they trained
    stopped: str  # "completed" | "early_stopping" | "cancelled"
    members: list[TrainResult] = field(default_factory=list)  # a seed ensemble's, in order
    teacher_path: Path | None = None  # a distilled ensemble's teacher (best_path is the student)
