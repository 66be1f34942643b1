"""How a model version is presented, on the model pages and in the admin: per-class scores,
the protocol and run behind its scores, how the app asks it, and its checkpoint download."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.urls import NoReverseMatch, reverse

from recognition.engine.tta import inference_speeds
from recognition.models import ModelVersion

__all__ = [
    "answers_text", "checkpoint_response", "download_name", "per_class_rows", "protocol_text", "run_link",
    "square_matrix",
]


def per_class_rows(version: ModelVersion) -> list[dict]:
    """One row per label: recall, precision, F1 and support.

    Taken from ``metrics["per_class"]`` when the version carries it, otherwise derived from
    its confusion matrix (rows = true), so uploaded checkpoints get the table too.
    """
    labels = list(version.labels)
    stored = version.metrics.get("per_class") or {}
    confusion = version.confusion if square_matrix(version.confusion, len(labels)) else None
    rows = []
    for i, label in enumerate(labels):
        entry = dict(stored.get(label) or {})
        if confusion is not None:
            support = sum(confusion[i])
            predicted = sum(row[i] for row in confusion)
            hit = confusion[i][i]
            entry.setdefault("support", support)
            entry.setdefault("recall", hit / support if support else None)
            entry.setdefault("precision", hit / predicted if predicted else None)
        recall, precision = entry.get("recall"), entry.get("precision")
        if "f1" not in entry and recall is not None and precision is not None:
            entry["f1"] = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        rows.append({"label": label, **entry})
    return rows


def square_matrix(matrix: object, n: int) -> bool:
    return (
        isinstance(matrix, list)
        and n > 0
        and len(matrix) == n
        and all(isinstance(row, list) and len(row) == n for row in matrix)
    )


def protocol_text(version: ModelVersion) -> str:
    """What produced the scores: the protocol text, else the lineage's, else the split name."""
    metrics, lineage = version.metrics or {}, version.lineage or {}
    split = metrics.get("split")
    return str(metrics.get("protocol") or lineage.get("protocol") or (f"{split} split" if split and split != "none" else ""))


def run_link(version: ModelVersion) -> tuple[object | None, str | None]:
    """The training run that produced ``version`` (reverse one-to-one from training) and its
    page URL, or (None, None) when it was uploaded or its run has been deleted."""
    run = getattr(version, "training_run", None)  # RelatedObjectDoesNotExist is an AttributeError
    if run is None:
        return None, None
    try:
        return run, reverse("runs:detail", args=[run.pk])
    except NoReverseMatch:
        return run, None


def answers_text(version: ModelVersion) -> str:
    """How the app asks this model, in words ("" for versions registered before it was recorded)."""
    members, trained = version.inference.get("members"), version.inference.get("speeds")
    if not members or not trained:
        return ""
    speeds = inference_speeds(trained, members=members, tta=settings.SER_TEST_TIME_AUGMENTATION)
    text = f"{members} models (seed ensemble)" if members > 1 else "one model"
    if len(speeds) > 1:
        text += f" at speeds {', '.join(_speed(s) for s in speeds)} (test-time augmentation)"
    passes = members * len(speeds)
    text += f": {passes} passes, probabilities averaged" if passes > 1 else ", one pass"
    if len(speeds) < len(inference_speeds(trained, members=members)):
        text += " (test-time augmentation is off on this server)"
    return text


def _speed(value: float) -> str:
    """0.9 → "0.9", 1.0 → "1.0", 0.95 → "0.95"."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def checkpoint_response(version: ModelVersion) -> FileResponse:
    """The checkpoint file as an attachment with its sha256 in ``X-Checkpoint-SHA256``;
    404 when the file is missing from storage. Shared by the model pages and the admin."""
    if not version.checkpoint or not version.checkpoint.storage.exists(version.checkpoint.name):
        raise Http404("The checkpoint file of this version is missing from storage.")
    handle = version.checkpoint.open("rb")
    response = FileResponse(
        handle, as_attachment=True, filename=download_name(version), content_type="application/octet-stream"
    )
    response["X-Checkpoint-SHA256"] = version.sha256
    return response


def download_name(version: ModelVersion) -> str:
    """The file name a download gets (also shown in the admin)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in version.name).strip("-.") or "model"
    return f"{stem}-v{version.version}{Path(version.checkpoint.name).suffix or '.pt'}"
