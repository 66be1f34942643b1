"""POST a run's notes and tags (from its page)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from training.models import TrainingRun
from training.permissions import require_change
from training.services.annotations import run_annotate
from training.services.runs import RunError


@require_POST
def run_annotate_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    require_change(request.user, run.created_by_id, "run")
    try:
        run_annotate(run=run, notes=request.POST.get("notes", ""), tags=request.POST.get("tags", ""))
    except RunError as exc:
        messages.error(request, f"Notes and tags not saved: {exc}")
    else:
        messages.success(request, "Notes and tags saved.")
    return redirect("runs:detail", pk=pk)
