"""Model registry pages: the list of versions, one version's report, activation, download.

Everyone logged in may look and download; only staff may change which version is active
(the same people who can do it in the admin). Non-staff never see the button, and a POST
from them is refused with 403.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from recognition import selectors, services
from recognition.engine.tta import inference_speeds
from recognition.models import ModelVersion

__all__ = ["model_list", "model_detail", "model_compare", "model_activate", "model_download", "checkpoint_response", "per_class_rows", "download_name"]


def per_class_rows(version: ModelVersion) -> list[dict]:
    """One row per label: recall, precision, F1 and support.

    Taken from ``metrics["per_class"]`` when the version carries it, otherwise derived from
    its confusion matrix (rows = true), so uploaded checkpoints get the table too.
    """
    labels = list(version.labels)
    stored = version.metrics.get("per_class") or {}
    confusion = version.confusion if _square(version.confusion, len(labels)) else None
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


def _square(matrix: object, n: int) -> bool:
    return (
        isinstance(matrix, list)
        and n > 0
        and len(matrix) == n
        and all(isinstance(row, list) and len(row) == n for row in matrix)
    )


def _protocol(version: ModelVersion) -> str:
    """What produced the scores: the protocol text, else the lineage's, else the split name."""
    metrics, lineage = version.metrics or {}, version.lineage or {}
    split = metrics.get("split")
    return str(metrics.get("protocol") or lineage.get("protocol") or (f"{split} split" if split and split != "none" else ""))


def _run_link(version: ModelVersion) -> tuple[object | None, str | None]:
    """The training run that produced ``version`` (reverse one-to-one from training) and its
    page URL, or (None, None) when it was uploaded or its run has been deleted."""
    run = getattr(version, "training_run", None)  # RelatedObjectDoesNotExist is an AttributeError
    if run is None:
        return None, None
    try:
        return run, reverse("runs:detail", args=[run.pk])
    except NoReverseMatch:
        return run, None


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    versions = list(selectors.model_version_list().select_related("created_by"))
    for version in versions:
        version.evaluated_on = _protocol(version)
    return render(request, "recognition/model_list.html", {"versions": versions, "can_activate": request.user.is_staff})


@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("created_by"), pk=pk)
    run, run_url = _run_link(version)
    lineage = dict(version.lineage or {})
    context = {
        "version": version,
        "metrics": version.metrics or {},
        "tta_as_asked": selectors.tta_is_as_asked(version.metrics or {}, version.inference.get("members") or 1),
        "per_class": per_class_rows(version),
        "has_confusion": _square(version.confusion, len(version.labels)),
        "confusion_data": {"labels": list(version.labels), "matrix": version.confusion},
        "run": run,
        "run_url": run_url,
        "lineage": lineage,
        "protocol": _protocol(version),
        "answers": _answers(version),
        "hyperparameters": lineage.get("hyperparameters") or {},
        "hyperparameters_json": json.dumps(lineage.get("hyperparameters") or {}, indent=2, sort_keys=True),
        "lineage_json": json.dumps(lineage, indent=2, sort_keys=True),
        "can_activate": request.user.is_staff,
        "file_present": bool(version.checkpoint) and version.checkpoint.storage.exists(version.checkpoint.name),
    }
    return render(request, "recognition/model_detail.html", context)


def _answers(version: ModelVersion) -> str:
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


@require_GET
def model_compare(request: HttpRequest) -> HttpResponse:
    """Two versions side by side: scores, per-class recall and precision, confusion matrices.
    ``?a=<id>&b=<id>``; without two valid ids the page asks for them."""
    versions = list(selectors.model_version_list())
    by_id = {str(v.pk): v for v in versions}
    chosen = [by_id[i] for i in (request.GET.get("a", ""), request.GET.get("b", "")) if i in by_id]
    pair = chosen if len(chosen) == 2 else []
    labels = list(dict.fromkeys(label for v in pair for label in v.labels))
    rows = [{v.pk: row for v in pair for row in per_class_rows(v) if row["label"] == label} for label in labels]
    context = {
        "versions": versions,
        "pair": pair,
        "chosen": [v.pk for v in chosen],
        "per_class": [{"label": label, "cells": [row.get(v.pk, {}) for v in pair]} for label, row in zip(labels, rows, strict=True)],
        "protocols": [_protocol(v) for v in pair],
        "confusions": [{"id": v.pk, "title": str(v), "labels": list(v.labels), "matrix": v.confusion}
                       for v in pair if _square(v.confusion, len(v.labels))],
    }
    return render(request, "recognition/model_compare.html", context)


@require_POST
def model_activate(request: HttpRequest, pk: int) -> HttpResponse:
    """Make a version the active one (staff only; the form carries the CSRF token)."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can change the active model.")
    version = get_object_or_404(ModelVersion, pk=pk)
    services.model_version_activate(version=version)
    messages.success(request, f"{version} is now the active model: recording, file classification and the API use it.")
    return redirect("recognition:model", pk=version.pk)


@require_GET
def model_download(request: HttpRequest, pk: int) -> FileResponse:
    """Stream the checkpoint file as an attachment (any logged-in user)."""
    return checkpoint_response(get_object_or_404(ModelVersion, pk=pk))


def checkpoint_response(version: ModelVersion) -> FileResponse:
    """The checkpoint file as an attachment with its sha256 in ``X-Checkpoint-SHA256``;
    404 when the file is missing from storage. Shared by this page and the admin."""
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
