"""Model registry pages: the list of versions, one version's report, activation, download.

Everyone logged in may look and download; only staff may change which version is active
(the same people who can do it in the admin). Non-staff never see the button, and a POST
from them is refused with 403.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from recognition import selectors, services
from recognition.models import ModelVersion
from recognition.presentation import (
    answers_text,
    checkpoint_response,
    per_class_rows,
    protocol_text,
    run_link,
    square_matrix,
)

__all__ = ["model_list", "model_detail", "model_compare", "model_activate", "model_download"]


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    versions = list(selectors.model_version_list().select_related("created_by"))
    for version in versions:
        version.evaluated_on = protocol_text(version)
    return render(request, "recognition/model_list.html", {"versions": versions, "can_activate": request.user.is_staff})


@require_GET
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion.objects.select_related("created_by"), pk=pk)
    run, run_url = run_link(version)
    lineage = dict(version.lineage or {})
    context = {
        "version": version,
        "metrics": version.metrics or {},
        "tta_as_asked": selectors.tta_is_as_asked(version.metrics or {}, version.inference.get("members") or 1),
        "per_class": per_class_rows(version),
        "has_confusion": square_matrix(version.confusion, len(version.labels)),
        "confusion_data": {"labels": list(version.labels), "matrix": version.confusion},
        "run": run,
        "run_url": run_url,
        "lineage": lineage,
        "protocol": protocol_text(version),
        "answers": answers_text(version),
        "hyperparameters": lineage.get("hyperparameters") or {},
        "hyperparameters_json": json.dumps(lineage.get("hyperparameters") or {}, indent=2, sort_keys=True),
        "lineage_json": json.dumps(lineage, indent=2, sort_keys=True),
        "can_activate": request.user.is_staff,
        "file_present": bool(version.checkpoint) and version.checkpoint.storage.exists(version.checkpoint.name),
    }
    return render(request, "recognition/model_detail.html", context)


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
        "protocols": [protocol_text(v) for v in pair],
        "confusions": [{"id": v.pk, "title": str(v), "labels": list(v.labels), "matrix": v.confusion}
                       for v in pair if square_matrix(v.confusion, len(v.labels))],
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
