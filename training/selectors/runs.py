"""Reads about training runs: lists, a run's history for its charts, comparisons."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from training.engine.events import EpochReport
from training.models import EpochMetric, TrainingRun

__all__ = ["run_exists", "run_list", "run_snapshot", "run_status_payload", "epoch_payload", "run_history", "run_compare_data"]


def run_exists(run_id: int) -> bool:
    return TrainingRun.objects.filter(pk=run_id).exists()


def run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.prefetch_related("corpora").select_related("model_version")


def epoch_payload(metric: EpochMetric) -> dict:
    """A stored epoch as the live message carried it: its EpochReport's payload."""
    return EpochReport.from_payload(vars(metric)).to_payload()


def run_status_payload(run: TrainingRun) -> dict:
    return {
        "run": run.pk,
        "status": run.status,
        "phase": run.phase,
        "progress": run.progress,
        "current_fold": run.current_fold,
        "current_epoch": run.current_epoch,
        "best_ua": run.best_ua,
        "error": run.error,
        "cancel_requested": run.cancel_requested,
        "model_version": run.model_version_id,
        "test_metrics": run.test_metrics,
    }


def run_history(run_id: int, *, after: tuple[int, int, int] = (0, 0, 0)) -> list[dict]:
    """The stored epochs of a run after (fold, member, epoch) ``after``, in that order
    (a seed ensemble's models train one after another within a fold)."""
    fold, member, epoch = after
    rows = (EpochMetric.objects.filter(run_id=run_id)
            .filter(Q(fold__gt=fold) | Q(fold=fold, member__gt=member) | Q(fold=fold, member=member, epoch__gt=epoch))
            .order_by("fold", "member", "epoch"))
    # "at": when the epoch was stored (Unix seconds), so a page replaying history can say when
    # each epoch ended rather than when it received it.
    return [{**epoch_payload(m), "at": m.created_at.timestamp()} for m in rows]


def run_snapshot(run: TrainingRun | int, *, after: tuple[int, int, int] = (0, 0, 0)) -> dict:
    """A run's status and its history after ``after``; give the run when it is already loaded."""
    if not isinstance(run, TrainingRun):
        run = TrainingRun.objects.get(pk=run)
    return {"status": run_status_payload(run), "epochs": run_history(run.pk, after=after)}


def run_compare_data(run_ids: list[int]) -> list[dict]:
    """Every epoch's curves (validation UA, WA, macro-F1 and loss; training loss and accuracy)
    and the settings of chosen runs, in the order given."""
    runs = {r.pk: r for r in TrainingRun.objects.filter(pk__in=run_ids).prefetch_related("corpora")}
    out = []
    for pk in run_ids:
        run = runs.get(pk)
        if run is None:
            continue
        epochs = list(EpochMetric.objects.filter(run=run).order_by("fold", "member", "epoch")
                      .values("fold", "member", "epoch", "ua", "wa", "macro_f1", "val_loss", "train_loss", "train_acc"))
        out.append({
            "id": run.pk,
            "name": run.name,
            "status": run.status,
            "corpora": [c.name for c in run.corpora.all()],
            "labels": run.labels,
            "protocol": run.get_protocol_display() + (f" ({run.folds} folds)" if run.protocol == "kfold" else ""),
            "hyperparameters": run.hyperparameters,
            "best_ua": run.best_ua,
            "test_metrics": run.test_metrics,
            "epochs": epochs,
        })
    return out
