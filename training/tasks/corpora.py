"""Corpus import task: receives the corpus id, the service does the work and keeps the state."""

from __future__ import annotations

from celery import shared_task

from training.services.corpus_import import corpus_import_execute


# No route names it, so it goes to the default queue (CELERY_TASK_DEFAULT_QUEUE), not to
# the training queue that GPU workers consume.
@shared_task(name="training.tasks.corpus_import", ignore_result=True)
def corpus_import(corpus_id: int) -> None:
    """Import the uploaded corpus ``corpus_id``; it ends ready or failed (see Corpus.error)."""
    corpus_import_execute(corpus_id=corpus_id)
