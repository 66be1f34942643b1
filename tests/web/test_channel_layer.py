"""The channel layer's receive ends when it is cancelled, whatever moment the cancel lands at."""

from __future__ import annotations

import asyncio

from redis.asyncio.connection import AbstractConnection

from ser_site.channel_layer import RedisChannelLayer


def test_the_layer_in_use_is_ours(channel_layer):
    assert isinstance(channel_layer, RedisChannelLayer)


def test_a_receive_cancelled_as_a_command_write_finishes_ends(channel_layer, monkeypatch):
    """redis-py writes each command under ``asyncio.wait_for``; on Python 3.11 that drops a
    cancel arriving as the write finishes, and the receive went on popping for ever: the task
    of every closed websocket whose cancel landed there never ended (a refused socket, closed
    while its receive opens its Redis connection, hit it about one time in five). Here the
    cancel lands exactly there, on the receive's first write."""
    write = AbstractConnection._send_packed_command
    target: list[asyncio.Task] = []

    async def write_then_cancel(self, command):
        await write(self, command)
        if target:
            target.pop().cancel()  # once: the write is done, wait_for has not resumed yet

    monkeypatch.setattr(AbstractConnection, "_send_packed_command", write_then_cancel)

    async def scenario():
        receive = asyncio.ensure_future(channel_layer.receive(await channel_layer.new_channel()))
        target.append(receive)
        done, _ = await asyncio.wait({receive}, timeout=channel_layer.brpop_timeout + 5)
        if not done:  # without the fix: stop the runaway receive (a second cancel gets through)
            receive.cancel()
            await asyncio.wait({receive})
        assert not target, "the cancel was never sent"
        assert done and receive.cancelled()

    asyncio.run(scenario())
