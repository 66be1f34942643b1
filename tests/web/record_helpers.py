"""Driving the record page's websocket (``ws/record/``) in tests, without a browser."""

from __future__ import annotations

import json

from channels.testing import WebsocketCommunicator

TIMEOUT = 30  # seconds a test waits for one message: generous, never an assertion on speed


def communicator(user) -> WebsocketCommunicator:
    from recognition.consumers import RecordConsumer

    comm = WebsocketCommunicator(RecordConsumer.as_asgi(), "/ws/record/")
    comm.scope["user"] = user
    return comm


async def start(comm, mime="audio/webm;codecs=opus", model=None) -> dict:
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    await comm.send_json_to({"type": "start", "mime": mime, "model": model})
    return await comm.receive_json_from(timeout=TIMEOUT)


async def expect_error(comm, code: str) -> dict:
    """Read until the error message (checking its code), then the close; returns the message."""
    while True:
        out = await comm.receive_output(timeout=TIMEOUT)
        if out["type"] == "websocket.send":
            msg = json.loads(out["text"])
            if msg["type"] == "error":
                break
    assert msg["code"] == code, msg
    assert msg["message"]
    closed = await comm.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close"
    assert closed["code"] >= 4000
    await comm.disconnect(timeout=TIMEOUT)
    return msg
