"""End to end with a real Celery worker subprocess and the real Redis: a zip is imported by
the worker, a run trains a tiny model on it, its epochs arrive in order at a websocket
client, and a ModelVersion is registered.
A worker killed mid-run leaves the run interrupted, and resume finishes it without gaps."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from devsupport.factories import ready_corpus
from recognition.engine.checkpoint import load_checkpoint
from recognition.models import ModelVersion
from tests.web.corpora_helpers import ravdess_folder, zip_bytes
from training.models import Corpus, EpochMetric, TrainingRun
from training.routing import websocket_urlpatterns
from training.selectors.run_details import run_per_speaker, run_split, speakers_of
from training.services import runs as services
from training.services.corpora import corpus_upload_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def wait_for(predicate, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    log = worker.log_text()[-4000:] if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def create_run(corpus, user, *, epochs: int, name: str = "e2e", members: int = 1, test_speakers=()) -> TrainingRun:
    recipe = services.recipe_build(model_size="small", epochs=epochs, batch_size=8, augment=False, patience=0, members=members)
    return services.run_create(name=name, corpora=[corpus], recipe=recipe, created_by=user, test_speakers=test_speakers)


def import_through_the_worker(tmp_path, user, worker) -> Corpus:
    """Upload a small synthetic RAVDESS-style zip; the worker's import task makes it ready."""
    archive = zip_bytes(ravdess_folder(tmp_path / "upload", actors=4, statements=2))
    corpus = corpus_upload_create(name="synth", user=user, archive=SimpleUploadedFile("synth.zip", archive))
    wait_for(lambda: Corpus.objects.get(pk=corpus.pk).status != Corpus.Status.IMPORTING, 120, "the import", worker)
    corpus.refresh_from_db()
    assert corpus.status == Corpus.Status.READY, corpus.error
    assert corpus.utterances.count() == 32
    return corpus


def test_run_trains_streams_epochs_and_registers_a_model(tmp_path, user, celery_worker, channel_layer):
    corpus = import_through_the_worker(tmp_path, user, celery_worker)
    messages: list[dict] = []

    async def watch(run_id: int) -> None:
        c = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{run_id}/")
        c.scope["user"] = user
        connected, _ = await c.connect()
        assert connected
        while True:
            m = await c.receive_json_from(timeout=240)
            messages.append(m)
            if m["type"] == "run.status" and m["status"] in ("succeeded", "failed", "cancelled"):
                break
        await c.disconnect()

    run = create_run(corpus, user, epochs=3)
    asyncio.run(watch(run.pk))
    run.refresh_from_db()
    assert run.status == "succeeded", (run.error, celery_worker.log_text()[-3000:])
    epochs = [m["epoch"] for m in messages if m["type"] == "run.epoch"]
    assert epochs == [1, 2, 3]  # in order, no gaps, no duplicates (replayed or live)
    assert any(m["type"] == "run.progress" for m in messages)
    statuses = [m["status"] for m in messages if m["type"] == "run.status"]
    assert statuses[-1] == "succeeded" and "running" in statuses
    assert list(EpochMetric.objects.filter(run=run).values_list("epoch", flat=True)) == [1, 2, 3]
    version = ModelVersion.objects.get()
    assert run.model_version == version and version.name == "e2e" and version.version == 1
    assert version.labels == run.labels and version.metrics["split"] == "test" and "protocol" in version.metrics
    assert len(version.confusion) == len(run.labels)
    assert version.lineage["run_id"] == run.pk and version.lineage["corpora"] == ["synth"]
    assert run.labels == ["neutral", "happy", "sad", "angry"]
    # The speakers planned when the run was created are the ones the worker held out, and
    # the report scores each test speaker; the model's lineage names them.
    planned = run.planned_split["folds"]
    assert run_split(run) == {"planned": False, "chosen": False, "folds": [{"fold": 1, **planned[0]}]}
    assert planned[0]["test_speakers"] and planned[0]["valid_speakers"]
    assert [r["speaker"] for r in run_per_speaker(run)] == planned[0]["test_speakers"]
    assert version.lineage["split"] == [{"fold": 1, **planned[0]}]
    # A second run of the same name gets version 2; a cancelled queued run never starts.
    with transaction.atomic():  # enqueued on commit, so the worker can only see it cancelled
        queued = create_run(corpus, user, epochs=1, name="e2e")
        services.run_cancel(run=queued)
    chosen = ["synth/" + speakers_of([corpus])["synth"][0]]  # held out by the user's choice
    second = create_run(corpus, user, epochs=1, name="e2e", members=2, test_speakers=chosen)  # a seed ensemble of two
    wait_for(lambda: TrainingRun.objects.get(pk=second.pk).status == "succeeded", 120, "the second run", celery_worker)
    assert TrainingRun.objects.get(pk=queued.pk).status == "cancelled"
    assert TrainingRun.objects.get(pk=queued.pk).started_at is None
    assert sorted(ModelVersion.objects.values_list("version", flat=True)) == [1, 2]
    assert list(EpochMetric.objects.filter(run=second).values_list("member", "epoch")) == [(1, 1), (2, 1)]
    ensemble = ModelVersion.objects.get(version=2)
    assert ensemble.inference == {"members": 2, "speeds": [1.0]} and version.inference == {"members": 1, "speeds": [1.0]}
    second.refresh_from_db()
    assert len(second.report["folds"][0]["members"]) == 2
    assert second.report["split"]["test_speakers"] == chosen == second.planned_split["folds"][0]["test_speakers"]
    assert second.report["split"]["valid_speakers"] == second.planned_split["folds"][0]["valid_speakers"]
    # "Best val UA" ends as the registered ensemble's own validation UA, not its best model's.
    assert second.best_ua == pytest.approx(second.report["folds"][0]["validation_ua"])
    assert second.best_ua == pytest.approx(load_checkpoint(ensemble.checkpoint.path).metrics["validation"]["ua"])


def test_killed_worker_leaves_the_run_interrupted_and_resume_finishes_it(tmp_path, user, celery_worker, redis_server, settings):
    from tests.conftest import WorkerProcess

    corpus = ready_corpus(tmp_path / "corpus")
    run = create_run(corpus, user, epochs=6)
    wait_for(lambda: EpochMetric.objects.filter(run=run).count() >= 2, 180, "two epochs", celery_worker)
    celery_worker.kill()
    assert TrainingRun.objects.get(pk=run.pk).status == "running"
    # No heartbeat any more: after the timeout the reaper (beat task, new worker) marks it.
    time.sleep(settings.SER_HEARTBEAT_TIMEOUT + 0.5)
    assert services.runs_reap_stale() == [run.pk]
    run.refresh_from_db()
    assert run.status == "interrupted"
    done_before = EpochMetric.objects.filter(run=run).count()

    services.run_resume(run=run)
    worker = WorkerProcess(celery_worker.env, tmp_path / "worker2.log").start()
    try:
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status in ("succeeded", "failed"), 180, "the resumed run", worker)
    finally:
        worker.stop()
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    epochs = list(EpochMetric.objects.filter(run=run).values_list("epoch", flat=True))
    assert epochs == [1, 2, 3, 4, 5, 6] and done_before >= 2
    assert run.model_version is not None
