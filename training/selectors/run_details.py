"""Reads for a run's page beyond its curves: its split (test and validation speakers), the
per-speaker test scores, the confusion matrices to show once it has finished, and time
(elapsed, ETA, duration, and the estimate the form gives before a run exists)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Count, Sum
from django.utils import timezone

from training.engine.splits import natural_key
from training.models import Corpus, EpochMetric, TrainingRun

__all__ = ["speakers_of", "run_split", "run_per_speaker", "run_confusions", "run_timing", "duration_estimate_data"]

RUNNING = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)


def speakers_of(corpora: Iterable[Corpus]) -> dict[str, list[str]]:
    """Corpus name → its speakers, naturally sorted (corpora without speakers are left out)."""
    out: dict[str, list[str]] = {}
    for corpus in corpora:
        names = corpus.utterances.exclude(speaker="").values_list("speaker", flat=True).distinct()
        if names:
            out[corpus.name] = sorted(set(names), key=natural_key)
    return out


def run_split(run: TrainingRun) -> dict:
    """The run's split as the pages show it: the report's once the run has one, else the plan
    made when it was created. ``{"planned": bool, "chosen": bool, "folds": [{"fold",
    "test_speakers", "valid_speakers"}]}`` (``chosen``: the user picked the test speakers)."""
    done = [f for f in (run.report or {}).get("folds") or [] if isinstance(f.get("split"), dict)]
    if done:
        folds = [{"test_speakers": f["split"].get("test_speakers") or [], "valid_speakers": f["split"].get("valid_speakers") or []}
                 for f in done]
    else:
        folds = list((run.planned_split or {}).get("folds") or [])
    return {"planned": not done, "chosen": bool(run.test_speakers),
            "folds": [{"fold": i + 1, **f} for i, f in enumerate(folds)]}


def run_per_speaker(run: TrainingRun) -> list[dict]:
    """One row per test speaker (every fold's for k-fold): ``{"speaker", "corpus", "name",
    "fold", "n", "correct", "wa", "ua"}``, in natural order. Empty before the run has a report
    or for runs scored before per-speaker scores existed."""
    report = run.report or {}
    folds = report.get("folds") or []
    sources = [(i + 1, f.get("per_speaker") or {}) for i, f in enumerate(folds)] or [(1, report.get("per_speaker") or {})]
    rows = []
    for fold, per_speaker in sources:
        for key, values in per_speaker.items():
            corpus, _, name = key.partition("/")
            rows.append({"speaker": key, "corpus": corpus, "name": name or key, "fold": fold, **values})
    return sorted(rows, key=lambda r: natural_key(r["speaker"]))


def run_confusions(run: TrainingRun) -> list[dict]:
    """After success: the test confusion and the best epoch's validation confusion, each
    with its caption: ``[{"id", "title", "caption", "labels", "matrix"}]``."""
    if run.status != TrainingRun.Status.SUCCEEDED:
        return []
    out = []
    best = EpochMetric.objects.filter(run=run, is_best=True).order_by("-ua", "fold", "member", "epoch").first()
    if best is not None and best.confusion:
        where = [f"epoch {best.epoch}"]
        if run.protocol == TrainingRun.Protocol.KFOLD:
            where.append(f"fold {best.fold}")
        if run.trained_models > 1:
            where.append(f"model {best.member}")
        out.append({
            "id": "validation", "title": "Validation confusion, best epoch", "labels": run.labels, "matrix": best.confusion,
            "caption": f"Validation speakers, best epoch ({', '.join(where)}; UA {best.ua:.3f}). Rows = true class, row-normalised.",
        })
    test = (run.report or {}).get("confusion") or []
    if test:
        kfold = run.protocol == TrainingRun.Protocol.KFOLD
        out.append({
            "id": "test", "title": "Test confusion", "labels": run.labels, "matrix": test,
            "caption": ("Held-out test speakers of every fold, summed" if kfold else "Held-out test speakers, the registered model")
            + ". Rows = true class, row-normalised.",
        })
    return out[::-1]  # the test matrix first: the per-speaker table sits beside it


def run_timing(run: TrainingRun, *, now: dt.datetime | None = None) -> dict:
    """Seconds: ``elapsed`` since the worker started it (to its end once finished), ``eta``
    (running: from the progress made so far, else None) and ``running``."""
    now = now or timezone.now()
    started = run.started_at
    if started is None:
        return {"elapsed": None, "eta": None, "running": False}
    end = run.finished_at if run.status not in RUNNING and run.finished_at else now
    elapsed = max(0.0, (end - started).total_seconds())
    running = run.status == TrainingRun.Status.RUNNING
    eta = None
    # Loading audio comes first; a few percent of training makes the rate meaningful.
    if running and 0.02 <= run.progress < 1:
        eta = elapsed * (1 - run.progress) / run.progress
    return {"elapsed": elapsed, "eta": eta, "running": running}


def duration_estimate_data(corpora: Iterable[Corpus]) -> dict:
    """What the run form needs to estimate a run's length: seconds per epoch per utterance
    measured on this server (per model size and overall), and each corpus' utterance count.

    ``{"rates": {"<front end>/<model size>": s, "<front end>/*": s, "*": s}, "epochs": measured epochs,
    "utterances": {corpus id: n}}``; the form falls back from the exact pair to the front end
    to everything measured, and gives no estimate without a measured epoch."""
    counts = {c.pk: c.n for c in Corpus.objects.filter(pk__in=[c.pk for c in corpora]).annotate(n=Count("utterances"))}
    # One EpochMetric row is one model's epoch (an ensemble's models each have theirs).
    runs = list(TrainingRun.objects.filter(epochs__isnull=False).annotate(seconds=Sum("epochs__duration"), n_epochs=Count("epochs"))
                .values("pk", "hyperparameters", "seconds", "n_epochs"))
    sizes = dict(TrainingRun.objects.filter(pk__in=[r["pk"] for r in runs]).annotate(n=Count("corpora__utterances"))
                 .values_list("pk", "n"))
    by_size: dict[str, list[float]] = {}
    measured = 0
    for r in runs:
        n = sizes.get(r["pk"]) or 0
        if not n or not r["n_epochs"]:
            continue
        rate = r["seconds"] / r["n_epochs"] / n
        # The front end changes an epoch's cost far more than the model size does.
        kind = ((r["hyperparameters"] or {}).get("features") or {}).get("kind") or "logmel"
        size = (r["hyperparameters"] or {}).get("model_size") or "medium"
        for key in (f"{kind}/{size}", f"{kind}/*", "*"):
            by_size.setdefault(key, []).append(rate)
        measured += r["n_epochs"]
    rates = {size: sum(v) / len(v) for size, v in by_size.items()}
    return {"rates": rates, "epochs": measured, "utterances": counts}
