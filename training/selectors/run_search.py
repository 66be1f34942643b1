"""The run list as the user asks for it: searched, filtered by status, corpus and tag,
sorted by any column, each run with its duration."""

from __future__ import annotations

from django.utils import timezone

from training.models import TrainingRun

from .runs import run_list

__all__ = ["SORTS", "run_list_search", "run_tags"]

# Sort key -> the value a run sorts by (runs where it is None go last).
SORTS = {
    "created": lambda r: r.created_at,
    "name": lambda r: r.name.lower(),
    "status": lambda r: r.status,
    "duration": lambda r: r.duration,
    "best_ua": lambda r: r.best_ua,
    "test_ua": lambda r: (r.test_metrics or {}).get("ua"),
}


def _duration(run: TrainingRun, now) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at if run.finished_at and run.status not in ("queued", "running") else now
    return max(0.0, (end - run.started_at).total_seconds())


def run_list_search(*, q: str = "", status: str = "", corpus: int | None = None, tag: str = "", sort: str = "-created") -> list[TrainingRun]:
    """Runs matching all the given filters; ``q`` looks in names, notes, tags and corpus names
    (case-insensitive). ``sort`` is a key of :data:`SORTS`, ``-`` first for descending; runs
    without the value sort last. Each run gets ``.duration`` (seconds, running ones so far)."""
    runs = run_list()
    if status:
        runs = runs.filter(status=status)
    if corpus:
        runs = runs.filter(corpora__pk=corpus)
    now = timezone.now()
    out = []
    needle = q.strip().lower()
    for run in runs.distinct():
        names = [c.name for c in run.corpora.all()]
        if tag and tag not in (run.tags or []):
            continue
        if needle and not any(needle in text.lower() for text in [run.name, run.notes, *(run.tags or []), *names]):
            continue
        run.duration = _duration(run, now)
        out.append(run)
    descending = sort.startswith("-")
    key = SORTS.get(sort.lstrip("-"), SORTS["created"])
    present = [r for r in out if key(r) is not None]
    missing = [r for r in out if key(r) is None]
    return sorted(present, key=key, reverse=descending) + missing


def run_tags() -> list[str]:
    """Every tag in use, sorted."""
    tags: set[str] = set()
    for values in TrainingRun.objects.exclude(tags=[]).values_list("tags", flat=True):
        tags.update(values or [])
    return sorted(tags)
