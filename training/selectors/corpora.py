"""Reads about corpora."""

from __future__ import annotations

from django.db.models import QuerySet

from training.models import Corpus

__all__ = ["corpus_import_state", "corpus_list", "corpus_ready_list"]


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
