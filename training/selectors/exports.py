"""A run's numbers as tables for download: every epoch's metrics, and a confusion matrix."""

from __future__ import annotations

from training.models import EpochMetric, TrainingRun

from .run_details import run_confusions

__all__ = ["run_metrics_rows", "run_confusion_rows"]

METRIC_COLUMNS = ("fold", "member", "epoch", "train_loss", "train_acc", "val_loss", "wa", "ua", "macro_f1", "lr", "duration", "is_best")


def run_metrics_rows(run: TrainingRun) -> list[list]:
    """Header, then one row per stored epoch: the curves' numbers, then each class' validation recall."""
    labels = list(run.labels)
    rows: list[list] = [[*METRIC_COLUMNS, *(f"recall_{label}" for label in labels)]]
    for metric in EpochMetric.objects.filter(run=run).order_by("fold", "member", "epoch"):
        recall = metric.per_class_recall or {}
        rows.append([*(getattr(metric, c) for c in METRIC_COLUMNS), *(recall.get(label, "") for label in labels)])
    return rows


def run_confusion_rows(run: TrainingRun, which: str) -> list[list] | None:
    """Counts, rows = true class, columns = predicted; None if the run has no such matrix
    (``which``: "validation" for the best epoch's, "test")."""
    for confusion in run_confusions(run):
        if confusion["id"] == which:
            labels = list(confusion["labels"])
            return [["true \\ predicted", *labels], *([label, *row] for label, row in zip(labels, confusion["matrix"], strict=True))]
    return None
