"""Import progress over the websocket, sent by the real import; and the real Celery worker path."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from ser_site.asgi import application
from tests.web.corpora_helpers import leftovers, ravdess_folder, storage, upload, zip_bytes  # noqa: F401
from training.models import Corpus
from training.services.corpora import corpus_upload_create
from training.services.corpus_import import corpus_import_execute, work_dir
from training.services.datasets import corpus_root


def _session_headers(client, user) -> list[tuple[bytes, bytes]]:
    """Headers of a browser logged in as ``user``: the websocket goes through the full ASGI stack
    (origin check, session authentication)."""
    client.force_login(user)
    return [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


@pytest.mark.django_db(transaction=True)
def test_import_progress_reaches_the_browser(channel_layer, storage, tmp_path, client, user):  # noqa: F811
    # An upload as the view stores it; the task's message is not sent (no worker here): the test runs the import.
    corpus = Corpus.objects.create(name="live")
    target = work_dir(corpus.pk)
    target.mkdir(parents=True)
    (target / "upload.zip").write_bytes(zip_bytes(ravdess_folder(tmp_path / "src")))
    headers = _session_headers(client, user)

    async def scenario() -> list[dict]:
        communicator = WebsocketCommunicator(application, f"/ws/corpora/{corpus.pk}/import/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_json_from(timeout=10)
        assert first == {"type": "import.status", "corpus": corpus.pk, "status": "importing", "progress": 0.0, "error": ""}
        job = asyncio.ensure_future(sync_to_async(corpus_import_execute, thread_sensitive=False)(corpus_id=corpus.pk))
        received = []
        while not (received and received[-1]["type"] == "import.status" and received[-1]["status"] != "importing"):
            received.append(await communicator.receive_json_from(timeout=120))
        await job
        await communicator.disconnect()
        return received

    received = async_to_sync(scenario)()
    progress = [m for m in received if m["type"] == "import.progress"]
    assert {m["phase"] for m in progress} >= {"unpacking", "checking audio"}
    values = [m["progress"] for m in progress]
    assert values == sorted(values) and 0 <= values[0] and values[-1] <= 1
    checking = [m for m in progress if m["phase"] == "checking audio"]
    assert checking[-1]["done"] == checking[-1]["total"] == 16
    assert received[-1] == {"type": "import.status", "corpus": corpus.pk, "status": "ready", "progress": 1.0, "error": ""}


@pytest.mark.django_db(transaction=True)
def test_websocket_refuses_anonymous_and_unknown_corpora(channel_layer, client, user):
    corpus = Corpus.objects.create(name="c")
    headers = _session_headers(client, user)

    async def scenario() -> tuple:
        anonymous = WebsocketCommunicator(application, f"/ws/corpora/{corpus.pk}/import/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
        first = await anonymous.connect()
        await anonymous.disconnect()
        missing = WebsocketCommunicator(application, f"/ws/corpora/{10**6}/import/", headers=headers)
        second = await missing.connect()
        await missing.disconnect()
        return first, second

    first, second = async_to_sync(scenario)()
    assert first == (False, 4401) and second == (False, 4404)


@pytest.mark.slow
def test_upload_is_imported_by_the_real_worker(celery_worker, tmp_path):
    """Enqueued on commit, run by a real ``celery worker`` process (it shares the suite's data folders)."""
    corpus = corpus_upload_create(name="worker", archive=upload(zip_bytes(ravdess_folder(tmp_path / "src", actors=1))))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        corpus.refresh_from_db()
        if corpus.status != Corpus.Status.IMPORTING:
            break
        time.sleep(0.2)
    assert corpus.status == Corpus.Status.READY, corpus.error or celery_worker.log_text()[-3000:]
    assert corpus.utterances.count() == 8
    assert "training.tasks.corpus_import" in celery_worker.log_text()
    # The staged upload is removed just after the corpus turns ready (the task's finally:),
    # so on a busy machine the test may look in between.
    while work_dir(corpus.pk).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not work_dir(corpus.pk).exists()
    folder = corpus_root(corpus)
    assert folder.is_dir()
    shutil.rmtree(folder)
