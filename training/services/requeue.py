"""Give queued work whose broker message was lost a new message.

The database is the source of truth; the broker only carries "start this" messages. The
embedded Redis keeps nothing on disk, so a restart (or a crash) of it loses every message
still waiting: the runs and uploaded imports stay "waiting for a worker" for good. On worker
start and in the periodic reaper, :func:`queued_work_requeue` looks at what the broker holds
(waiting in a queue, or delivered to a worker and not yet acknowledged) and sends a message
for each queued run or upload import that has none. A duplicate is harmless: the task's
conditional claim (queued -> running, importing without a heartbeat) lets only one start.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from training.models import Corpus, TrainingRun

from .corpus_import import work_dir
from .queue import IMPORT_TASK, RUN_TASK, corpus_import_enqueue, run_enqueue

log = logging.getLogger(__name__)

__all__ = ["broker_task_arguments", "queued_work_requeue"]

# Work younger than this may have its message still on the way (it is sent after the commit).
GRACE_SECONDS = 5.0
# One requeue pass at a time across workers (both start together in `make run`).
_LOCK_KEY = "ser:requeue-lock"
_LOCK_SECONDS = 30


def _message_task(raw: bytes | str) -> tuple[str, Any] | None:
    """(task name, first positional argument) of a kombu message as the Redis transport stores it."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # the unacked hash stores [message, exchange, routing key]
            message = message[0]
        name = message["headers"]["task"]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return name, (args[0] if args else None)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def broker_task_arguments(queues: list[str]) -> set[tuple[str, Any]] | None:
    """Every (task name, first argument) the broker holds for ``queues``: waiting, or delivered
    and not acknowledged. None when the broker is not a Redis one (then nothing is known)."""
    from ser_site.celery import app

    found: set[tuple[str, Any]] = set()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = getattr(channel, "client", None)
        if client is None or not hasattr(channel, "_q_for_pri"):
            return None
        names = {channel._q_for_pri(queue, priority) for queue in queues for priority in channel.priority_steps}
        raw: list[Any] = []
        for name in names:
            raw.extend(client.lrange(name, 0, -1))
        raw.extend(client.hvals(channel.unacked_key))
        for item in raw:
            task = _message_task(item)
            if task is not None:
                found.add(task)
    return found


def _lock() -> bool:
    from ser_site.celery import app

    with app.connection_for_write() as connection:
        client = getattr(connection.default_channel, "client", None)
        return client is None or bool(client.set(_LOCK_KEY, "1", nx=True, ex=_LOCK_SECONDS))


def queued_work_requeue(*, grace: float = GRACE_SECONDS) -> dict[str, list[int]]:
    """Send a new message for each queued run and uploaded import that the broker has none for.

    Returns the ids requeued: ``{"runs": [...], "corpora": [...]}``.
    """
    done: dict[str, list[int]] = {"runs": [], "corpora": []}
    before = timezone.now() - timedelta(seconds=grace)
    runs = list(TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, created_at__lt=before).values_list("pk", flat=True))
    # Upload imports not started yet (a running one stamps its heartbeat; a server-path import
    # runs in its command and has no staged upload).
    imports = [pk for pk in Corpus.objects.filter(status=Corpus.Status.IMPORTING, heartbeat_at__isnull=True,
                                                 created_at__lt=before).values_list("pk", flat=True)
               if (work_dir(pk) / "upload.zip").is_file() or (work_dir(pk) / "upload").is_dir()]
    if not runs and not imports:
        return done
    queues = sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *(r["queue"] for r in settings.CELERY_TASK_ROUTES.values())})
    held = broker_task_arguments(queues)
    if held is None or not _lock():
        return done
    for pk in runs:
        if (RUN_TASK, pk) not in held:
            task_id = run_enqueue(pk)
            TrainingRun.objects.filter(pk=pk, status=TrainingRun.Status.QUEUED).update(celery_task_id=task_id)
            done["runs"].append(pk)
    for pk in imports:
        if (IMPORT_TASK, pk) not in held:
            corpus_import_enqueue(pk)
            done["corpora"].append(pk)
    if done["runs"] or done["corpora"]:
        log.warning("requeued work whose broker message was lost: %s", done)
    return done
