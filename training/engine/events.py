"""What the trainer tells its caller, as typed events.

Every event knows where its model sits in the run (:class:`Place`: fold of folds, model of
the seed ensemble's models, the distilled student counted as one more), so no caller tags,
copies or rescales it: ``progress`` (0-1 over the whole run) is computed here, once.
:meth:`EpochReport.to_payload` is the one JSON form of an epoch: what the web app stores
(one EpochMetric row), sends to the run's channel-layer group and replays from history,
and what ``last.pt`` keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

__all__ = ["BatchProgress", "Callback", "EpochReport", "Event", "Place", "Resumed"]


@dataclass(frozen=True, kw_only=True)
class Place:
    """Where one model's training sits in a run (all 1-based)."""

    fold: int = 1
    folds: int = 1
    member: int = 1  # the model of a seed ensemble; its distilled student comes after them
    members: int = 1

    def overall(self, fraction: float) -> float:
        """``fraction`` (0-1) of this model's training as a fraction of the whole run."""
        return min(1.0, ((self.fold - 1) + ((self.member - 1) + fraction) / self.members) / self.folds)


@dataclass(frozen=True, kw_only=True)
class BatchProgress(Place):
    """Sent every ``progress_every`` batches and after an epoch's last batch."""

    epoch: int  # 1-based, the epoch under way
    epochs: int
    batch: int
    batches: int
    train_loss: float  # running mean over the epoch so far

    @property
    def progress(self) -> float:
        return self.overall((self.epoch - 1 + self.batch / self.batches) / self.epochs)

    def to_payload(self) -> dict:
        return {**asdict(self), "progress": self.progress}


@dataclass(frozen=True, kw_only=True)
class EpochReport(Place):
    """One finished epoch of one model, validated. Epochs number from 1 for every model."""

    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    wa: float
    ua: float
    macro_f1: float
    confusion: list[list[int]]  # true × predicted counts on the validation set
    per_class_recall: dict[str, float]
    lr: float
    duration: float  # seconds, validation included
    is_best: bool  # validation UA rose: this epoch's weights are the model's best.pt

    @property
    def progress(self) -> float:
        # Rows stored before the epoch count was kept read 0: they count as their model's end.
        return self.overall(self.epoch / max(self.epochs, self.epoch, 1))

    def to_payload(self) -> dict:
        """JSON-ready: every field and ``progress``."""
        return {**asdict(self), "progress": self.progress}

    @classmethod
    def from_payload(cls, data: dict) -> EpochReport:
        """Inverse of :meth:`to_payload`; other keys (``progress``, a stored row's ids, the
        ``type`` older records carried) are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True, kw_only=True)
class Resumed(Place):
    """Sent once when a model resumes, before any new epoch: ``history`` holds the epochs
    ``last.pt`` kept, so a caller killed before delivering one of them fills the gap."""

    epoch: int  # epochs already done
    history: tuple[EpochReport, ...]


Event = BatchProgress | EpochReport | Resumed
Callback = Callable[[Event], None]
