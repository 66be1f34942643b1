"""Messages to the task queue, sent by task name.

The tasks (:mod:`training.tasks`) call the services; the services only name the tasks, so
the import runs one way and no service imports a task module.
"""

from __future__ import annotations

from ser_site.celery import app

__all__ = ["IMPORT_TASK", "RUN_TASK", "corpus_import_enqueue", "run_enqueue", "task_revoke"]

RUN_TASK = "training.tasks.run_train"
IMPORT_TASK = "training.tasks.corpus_import"


def run_enqueue(run_id: int) -> str:
    """Ask a training worker to run ``run_id`` (routed to the training queue by
    ``CELERY_TASK_ROUTES``); returns the message's task id."""
    return app.send_task(RUN_TASK, args=[run_id]).id or ""


def corpus_import_enqueue(corpus_id: int) -> str:
    """Ask a worker to import the uploaded corpus ``corpus_id``; returns the task id."""
    return app.send_task(IMPORT_TASK, args=[corpus_id]).id or ""


def task_revoke(task_id: str) -> None:
    """Tell the workers to drop the message ``task_id`` if it has not started."""
    app.control.revoke(task_id)
