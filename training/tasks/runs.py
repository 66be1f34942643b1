from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from training.services import corpus_import, execution, requeue, runs


@shared_task(name="training.tasks.run_train", acks_late=True, ignore_result=True)
def run_train(run_id: int) -> str:
    return execution.run_execute(run_id)


@shared_task(name="training.tasks.reap_stale", ignore_result=True)
def reap_stale() -> dict[str, Any]:
    """Runs and imports whose worker died: runs become interrupted, imports failed. Queued
    work whose broker message was lost (a Redis restart) gets a new one."""
    return {"runs": runs.runs_reap_stale(), "corpora": corpus_import.corpora_reap_stale(),
            "requeued": requeue.queued_work_requeue()}


@worker_ready.connect
def _reap_on_start(**kwargs: object) -> None:
    # A restarted worker first marks the work its dead predecessor left behind, and requeues
    # what a restarted broker forgot.
    reap_stale()
