"""Downloads of a run's numbers as CSV (the selectors build the tables)."""

from __future__ import annotations

import csv

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from training.models import TrainingRun
from training.selectors.exports import run_confusion_rows, run_metrics_rows


def _csv(rows: list[list], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv.writer(response).writerows(rows)
    return response


def _stem(run: TrainingRun) -> str:
    return f"run-{run.pk}-{slugify(run.name)[:40] or 'run'}"


@require_GET
def run_metrics_csv(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    return _csv(run_metrics_rows(run), f"{_stem(run)}-metrics.csv")


@require_GET
def run_confusion_csv(request: HttpRequest, pk: int, which: str) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    rows = run_confusion_rows(run, which)
    if rows is None:
        raise Http404(f"This run has no {which} confusion matrix (they exist once it has succeeded).")
    return _csv(rows, f"{_stem(run)}-confusion-{which}.csv")
