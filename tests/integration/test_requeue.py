"""Queued work survives a broker that forgets its messages (issue 29, item 4): the embedded
Redis keeps nothing on disk, so a restart loses every waiting message. The database says what
is queued; a starting worker (and the periodic reaper) sends new messages for what the broker
no longer holds, and each run still executes exactly once."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.utils import timezone

from devsupport.factories import ready_corpus
from ser_site.redis_server import EmbeddedRedis
from tests.conftest import WorkerProcess, worker_env
from tests.web.corpora_helpers import ravdess_folder, zip_bytes
from training.engine.labels import resolve_label_set
from training.models import Corpus, EpochMetric, TrainingRun
from training.services import runs as run_services
from training.services.datasets import label_counts
from training.services.requeue import broker_task_arguments, queued_work_requeue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(400)]
OLD = timezone.now() - timedelta(minutes=5)


def queued_run(corpus: Corpus, *, epochs: int = 2) -> TrainingRun:
    """A run row exactly as run_create stores it; its message is sent by the test, not on commit."""
    recipe = run_services.recipe_build(model_size="small", epochs=epochs, batch_size=8, augment=False, patience=0, members=1)
    labels = resolve_label_set(label_counts([corpus]), "common", {}).labels
    run = TrainingRun.objects.create(name="requeue", labels=list(labels), hyperparameters=recipe.to_dict(),
                                     phase="waiting for a worker")
    run.corpora.set([corpus])
    TrainingRun.objects.filter(pk=run.pk).update(created_at=OLD)
    return run


def wait_for(predicate, timeout: float, what: str, worker: WorkerProcess):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_text()[-4000:]}")


def test_a_broker_restart_loses_nothing_and_runs_execute_once(tmp_path, user):
    corpus = ready_corpus(tmp_path / "corpus", labels=("angry", "sad"), speakers=4, per_class=4)
    run = queued_run(corpus)
    # The studio's own data folder (short: it holds the Redis socket), with its own broker.
    data = Path(tempfile.mkdtemp(prefix="ser-rq-"))
    socket_path = data / "redis.sock"
    broker = EmbeddedRedis(socket_path).start()
    worker = None
    try:
        sender = Celery(broker=f"redis+socket://{socket_path}", set_as_current=False)  # not the studio's app
        sender.conf.task_routes = settings.CELERY_TASK_ROUTES
        sender.send_task("training.tasks.run_train", args=[run.pk])
        sender.close()
        assert redis.Redis(unix_socket_path=str(socket_path)).llen("training") == 1
        # An upload waiting for its import, whose message will be lost the same way.
        waiting = Corpus.objects.create(name="waiting upload")
        Corpus.objects.filter(pk=waiting.pk).update(created_at=OLD)
        staged = data / "tmp" / f"corpus-{waiting.pk}"
        staged.mkdir(parents=True)
        (staged / "upload.zip").write_bytes(zip_bytes(ravdess_folder(tmp_path / "src", actors=2, statements=1)))

        broker.stop()  # Ctrl-C of `make run`, or a crash: nothing was saved
        broker = EmbeddedRedis(socket_path).start()
        assert redis.Redis(unix_socket_path=str(socket_path)).llen("training") == 0

        from django.db import connection

        env = worker_env(connection.settings_dict["NAME"])
        env["SER_DATA_DIR"] = str(data)
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status not in ("queued", "running"), 300, "the run", worker)
        wait_for(lambda: Corpus.objects.get(pk=waiting.pk).status != Corpus.Status.IMPORTING, 120, "the import", worker)
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        shutil.rmtree(data, ignore_errors=True)

    run.refresh_from_db()
    log = worker.log_text()
    assert run.status == "succeeded", (run.error, log[-3000:])
    assert "requeued work whose broker message was lost" in log
    assert len(re.findall(r"run_train\[[^\]]+\] succeeded in [\d.]+s: 'succeeded'", log)) == 1
    assert EpochMetric.objects.filter(run=run).count() == 2  # each epoch once
    assert Corpus.objects.get(pk=waiting.pk).status == Corpus.Status.READY


def test_requeue_sends_one_message_for_what_the_broker_lacks(redis_server, tmp_path, settings):
    from ser_site.celery import app

    app.control.purge()
    settings.DATA_DIR = tmp_path / "data"
    corpus = ready_corpus(tmp_path / "corpus", labels=("angry", "sad"), speakers=2, per_class=1)
    lost, fresh = queued_run(corpus), queued_run(corpus)
    TrainingRun.objects.filter(pk=fresh.pk).update(created_at=timezone.now())  # its message may be on the way
    running = TrainingRun.objects.create(name="busy", status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())
    server_path_import = Corpus.objects.create(name="from a path")  # no staged upload: its command runs it
    Corpus.objects.filter(pk=server_path_import.pk).update(created_at=OLD)
    # A worker an earlier test started may have taken the lock that keeps two requeues apart.
    app.connection_for_write().default_channel.client.delete("ser:requeue-lock")
    try:
        assert queued_work_requeue() == {"runs": [lost.pk], "corpora": []}
        held = broker_task_arguments(["training", "default"])
        assert ("training.tasks.run_train", lost.pk) in held and ("training.tasks.run_train", running.pk) not in held
        app.connection_for_write().default_channel.client.delete("ser:requeue-lock")
        assert queued_work_requeue() == {"runs": [], "corpora": []}  # the broker holds its message now
    finally:
        app.control.purge()
