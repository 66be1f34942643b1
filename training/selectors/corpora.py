"""Reads about corpora: lists, import state, sample utterances, the file behind an utterance."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from django.db.models import QuerySet

from training.engine.labels import CANONICAL_LABELS
from training.models import Corpus, TrainingRun, Utterance
from training.services.datasets import corpus_root

_RANK = {label: i for i, label in enumerate(CANONICAL_LABELS)}

__all__ = [
    "canonical_order",
    "corpus_blocking_runs",
    "corpus_import_state",
    "corpus_list",
    "corpus_ready_list",
    "corpus_samples",
    "utterance_audio_path",
]


def corpus_list() -> QuerySet[Corpus]:
    return Corpus.objects.all()


def corpus_ready_list() -> QuerySet[Corpus]:
    return Corpus.objects.filter(status=Corpus.Status.READY)


def corpus_import_state(corpus_id: int) -> dict | None:
    """What an import-progress message carries, read from the table (None: no such corpus)."""
    row = Corpus.objects.filter(pk=corpus_id).values("status", "progress", "error").first()
    if row is None:
        return None
    return {"corpus": corpus_id, "status": row["status"], "progress": row["progress"], "error": row["error"]}


def corpus_blocking_runs(corpus: Corpus) -> QuerySet[TrainingRun]:
    """Runs that still need the corpus' files: queued, running, or interrupted (resumable)."""
    busy = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING, TrainingRun.Status.INTERRUPTED)
    return corpus.runs.filter(status__in=busy)


def canonical_order(labels: Iterable[str]) -> list[str]:
    """Labels in the engine's canonical order (a jsonb summary, on PostgreSQL, does not keep
    the order its keys were written in)."""
    return sorted(labels, key=lambda label: (_RANK.get(label, len(_RANK)), label))


def corpus_samples(corpus: Corpus, *, per_label: int = 3) -> dict[str, list[dict[str, Any]]]:
    """A few utterances per label, spread evenly over the label's files (so over its speakers too)."""
    present = set(corpus.summary.get("labels", {})) or set(corpus.utterances.values_list("label", flat=True))
    labels = canonical_order(present)
    samples: dict[str, list[dict[str, Any]]] = {}
    for label in labels:
        ids = list(corpus.utterances.filter(label=label).order_by("path").values_list("pk", flat=True))
        if not ids:
            continue
        picked = sorted({ids[int(i * len(ids) / per_label)] for i in range(min(per_label, len(ids)))})
        rows = Utterance.objects.filter(pk__in=picked).order_by("path").values("pk", "path", "speaker", "duration")
        samples[label] = list(rows)
    return samples


def utterance_audio_path(utterance_id: int) -> Path | None:
    """The audio file of an utterance of a ready corpus, or None.

    Only paths stored by the import are served, and only when they stay inside the corpus root.
    """
    utterance = Utterance.objects.select_related("corpus").filter(pk=utterance_id).first()
    if utterance is None or utterance.corpus.status != Corpus.Status.READY:
        return None
    relative = PurePosixPath(utterance.path)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    path = corpus_root(utterance.corpus).joinpath(*relative.parts)
    return path if path.is_file() else None
