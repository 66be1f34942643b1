from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from training.services import execution, runs


@shared_task(name="training.tasks.run_train", acks_late=True, ignore_result=True)
def run_train(run_id: int) -> str:
    return execution.run_execute(run_id)


@shared_task(name="training.tasks.runs_reap_stale", ignore_result=True)
def runs_reap_stale() -> list[int]:
    return runs.runs_reap_stale()


@worker_ready.connect
def _reap_on_start(**kwargs: object) -> None:
    # A restarted worker first marks runs whose previous worker died.
    runs.runs_reap_stale()
