"""The run websocket: history first, then live group messages, through the real Redis layer."""

from __future__ import annotations

import asyncio

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from devsupport.factories import ready_corpus
from ser_site.asgi import application
from ser_site.channels_util import group_send
from training.models import EpochMetric, TrainingRun
from training.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


def epoch_row(run, fold, epoch, ua):
    return EpochMetric.objects.create(
        run=run, fold=fold, epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0, wa=ua, ua=ua, macro_f1=ua,
        confusion=[[1, 0], [0, 1]], per_class_recall={"sad": 1.0, "angry": 1.0}, lr=1e-3, duration=1.0,
    )


@pytest.fixture
def run(tmp_path):
    corpus = ready_corpus(tmp_path / "c", labels=("angry", "sad"), speakers=2, per_class=1)
    run = TrainingRun.objects.create(name="live", labels=["sad", "angry"], status="running", heartbeat_at=timezone.now())
    run.corpora.set([corpus])
    for e in (1, 2, 3):
        epoch_row(run, 1, e, 0.1 * e)
    return run


def connect(path, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


def test_history_then_live_messages(run, user, channel_layer):
    async def scenario():
        c = connect(f"/ws/runs/{run.pk}/?after_fold=1&after_epoch=1", user)
        connected, _ = await c.connect()
        assert connected
        replay = [await c.receive_json_from(timeout=5) for _ in range(3)]
        assert [(m["type"], m.get("epoch")) for m in replay] == [("run.epoch", 2), ("run.epoch", 3), ("run.status", None)]
        assert replay[0]["replay"] is True and replay[2]["status"] == "running"
        # A replayed epoch says when it was stored, so the page logs that time, not the replay's.
        stored = await asyncio.to_thread(lambda: EpochMetric.objects.get(run=run, epoch=2).created_at.timestamp())
        assert replay[0]["at"] == pytest.approx(stored)
        # What the worker sends through channels_redis reaches the socket.
        await asyncio.to_thread(group_send, f"run-{run.pk}", {"type": "run.progress", "epoch": 4, "batch": 2, "batches": 5, "progress": 0.5})
        progress = await c.receive_json_from(timeout=5)
        assert progress["type"] == "run.progress" and progress["batch"] == 2
        # A live copy of an epoch the replay already sent is dropped; a new one goes through.
        for epoch in (3, 4):
            await asyncio.to_thread(group_send, f"run-{run.pk}", {"type": "run.epoch", "fold": 1, "epoch": epoch})
        live = await c.receive_json_from(timeout=5)
        assert live["epoch"] == 4
        # The client cannot inject anything.
        await c.send_json_to({"type": "run.status", "status": "succeeded"})
        await c.send_to(bytes_data=b"\x00garbage")
        assert await c.receive_nothing(timeout=0.3)
        await c.disconnect()

    asyncio.run(scenario())


def test_replay_resumes_after_a_seed_ensembles_model(run, user, channel_layer):
    EpochMetric.objects.filter(run=run, epoch=3).delete()
    for epoch in (1, 2):  # model 2 of the ensemble restarts at epoch 1
        EpochMetric.objects.create(
            run=run, fold=1, member=2, epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0, wa=0.5, ua=0.5,
            macro_f1=0.5, confusion=[], per_class_recall={}, lr=1e-3, duration=1.0,
        )

    async def scenario():
        c = connect(f"/ws/runs/{run.pk}/?after_fold=1&after_member=1&after_epoch=2", user)
        connected, _ = await c.connect()
        assert connected
        replay = [await c.receive_json_from(timeout=5) for _ in range(3)]
        assert [(m["type"], m.get("member"), m.get("epoch")) for m in replay] == [
            ("run.epoch", 2, 1), ("run.epoch", 2, 2), ("run.status", None, None)]
        # Live: model 2's epoch 2 again is dropped; its epoch 3 (and a message without a member,
        # from a worker that predates ensembles, for a later fold) go through.
        for message in ({"fold": 1, "member": 2, "epoch": 2}, {"fold": 1, "member": 2, "epoch": 3}, {"fold": 2, "epoch": 1}):
            await asyncio.to_thread(group_send, f"run-{run.pk}", {"type": "run.epoch", **message})
        live = [await c.receive_json_from(timeout=5) for _ in range(2)]
        assert [(m["fold"], m.get("member"), m["epoch"]) for m in live] == [(1, 2, 3), (2, None, 1)]
        await c.disconnect()

    asyncio.run(scenario())


def test_refuses_anonymous_and_unknown_runs(run, user, channel_layer):
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        c = connect(f"/ws/runs/{run.pk}/", AnonymousUser())
        connected, code = await c.connect()
        assert not connected and code == 4401
        c = connect("/ws/runs/999999/", user)
        connected, code = await c.connect()
        assert not connected and code == 4404

    asyncio.run(scenario())


def test_full_stack_checks_origin_and_session(run, user, channel_layer, client):
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        foreign = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie), (b"host", b"localhost")])
        connected, _ = await foreign.connect()
        assert not connected
        anonymous = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
        connected, code = await anonymous.connect()
        assert not connected and code == 4401
        good = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://localhost"), (b"cookie", cookie), (b"host", b"localhost")])
        connected, _ = await good.connect()
        assert connected
        first = await good.receive_json_from(timeout=5)
        assert first["type"] == "run.epoch" and first["epoch"] == 1
        await good.disconnect()

    asyncio.run(scenario())


def test_an_idle_socket_stays_open_past_the_layers_blocking_wait(run, user, channel_layer):
    """channels_redis waits for messages with a blocking pop of ``brpop_timeout`` seconds; a
    Redis client whose read timeout is not longer (redis-py 8 reads with 5 s by default) kills
    the consumer when nothing arrives for that long, which closed every idle run page every
    few seconds. After more than one full wait with no message, the socket still delivers."""

    async def scenario():
        c = connect(f"/ws/runs/{run.pk}/?after_fold=1&after_epoch=3", user)
        connected, _ = await c.connect()
        assert connected
        assert (await c.receive_json_from(timeout=5))["type"] == "run.status"
        assert await c.receive_nothing(timeout=channel_layer.brpop_timeout + 2, interval=0.5)
        await asyncio.to_thread(group_send, f"run-{run.pk}", {"type": "run.progress", "epoch": 4, "batch": 1, "batches": 5, "progress": 0.6})
        assert (await c.receive_json_from(timeout=5))["batch"] == 1
        await c.disconnect()

    asyncio.run(scenario())
