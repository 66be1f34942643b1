"""Run pages: list, new (form), detail (live charts), compare; POST actions cancel/resume/delete."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from recognition.selectors import tta_is_as_asked
from training import selectors
from training.forms import RunForm
from training.models import Corpus, TrainingRun
from training.permissions import may_change, require_change
from training.selectors import run_details, run_search
from training.services import runs as run_services


def run_list(request: HttpRequest) -> HttpResponse:
    query = {key: request.GET.get(key, "").strip() for key in ("q", "status", "corpus", "tag", "sort")}
    corpus = int(query["corpus"]) if query["corpus"].isdigit() else None
    sort = query["sort"] if query["sort"].lstrip("-") in run_search.SORTS else "-created"
    runs = run_search.run_list_search(q=query["q"], status=query["status"], corpus=corpus, tag=query["tag"], sort=sort)
    return render(request, "training/run_list.html", {
        "runs": runs, "query": {**query, "sort": sort}, "filtered": any(query[k] for k in ("q", "status", "corpus", "tag")),
        "any_runs": runs or TrainingRun.objects.exists(), "statuses": TrainingRun.Status.values,
        "corpora": Corpus.objects.filter(runs__isnull=False).distinct().order_by("name"), "tags": run_search.run_tags(),
    })


def run_new(request: HttpRequest) -> HttpResponse:
    form = RunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            recipe = run_services.recipe_build(
                features=data["features"], mean_norm=data["mean_norm"], model_size=data["model_size"], epochs=data["epochs"],
                batch_size=data["batch_size"], lr=data["lr"], dropout=data["dropout"],
                augment=data["augment"], patience=data["patience"], members=data["members"],
                distil=data["distil"],
            )
            run = run_services.run_create(
                name=data["name"], corpora=list(data["corpora"]), recipe=recipe,
                label_mode=data["label_mode"], label_mapping=run_services.parse_label_mapping(data["label_mapping"]),
                protocol=data["protocol"], folds=data["folds"], created_by=request.user,
                test_speakers=data["test_speakers"],
            )
        except run_services.RunError as exc:
            form.add_error(None, str(exc))
        else:
            # Tagged so the run page takes it away once the run has started.
            messages.success(request, f"Run “{run.name}” queued.", extra_tags="queued-note")
            return redirect("runs:detail", pk=run.pk)
    corpora = form.fields["corpora"].queryset
    return render(request, "training/run_new.html", {
        "form": form,
        "front_end_defaults": run_services.front_end_defaults(),
        "speaker_groups": [{"corpus": c, "speakers": form.speaker_groups.get(c.name, [])} for c in corpora],
        "estimate": run_details.duration_estimate_data(corpora),
    })


def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(selectors.run_list(), pk=pk)
    snapshot = selectors.run_snapshot(run)
    timing = run_details.run_timing(run)
    return render(request, "training/run_detail.html", {
        "run": run,
        "split": run_details.run_split(run),
        "per_speaker": run_details.run_per_speaker(run),
        "confusions": run_details.run_confusions(run),
        "timing": timing,
        "can_change": may_change(request.user, run.created_by_id),
        "snapshot": snapshot,
        "tta_as_asked": tta_is_as_asked(run.test_metrics or {}, run.saved_models),
        "config": {
            "run": run.pk, "epochs": run.total_epochs, "labels": run.labels,
            "folds": run.folds if run.protocol == TrainingRun.Protocol.KFOLD else 1,
            "members": run.trained_models,  # a seed ensemble draws one series per (fold, model), the student too
            "startedAt": run.started_at.timestamp() if run.started_at else None,
            "elapsed": timing["elapsed"],
        },
    })


def run_compare(request: HttpRequest) -> HttpResponse:
    ids = []
    for value in request.GET.getlist("run"):
        try:
            ids.append(int(value))
        except ValueError:
            continue
    return render(request, "training/run_compare.html", {
        "runs": selectors.run_list(),
        "chosen": ids,
        "data": selectors.run_compare_data(ids),
    })


def _action(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    require_change(request.user, run.created_by_id, "run")
    try:
        action(run=run)
    except run_services.RunError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done.format(name=run.name))
    return redirect("runs:detail", pk=pk)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _action(request, pk, run_services.run_cancel, "Cancel requested for “{name}”.")


@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _action(request, pk, run_services.run_resume, "“{name}” queued to resume from its last checkpoint.")


@require_POST
def run_delete(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    require_change(request.user, run.created_by_id, "run")
    try:
        run_services.run_delete(run=run)
    except run_services.RunError as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", pk=pk)
    messages.success(request, f"Run “{run.name}” deleted.")
    return redirect("runs:list")
