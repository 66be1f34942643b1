"""Websockets through the full ASGI stack: the whole origin (scheme, host, port) must be the
studio's own, and an unknown path is closed, not answered with a server error (issue 29, 5-6)."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from ser_site.asgi import application
from training.models import Corpus, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paths(user):
    run = TrainingRun.objects.create(name="live", labels=["sad", "angry"], status="running", heartbeat_at=timezone.now(),
                                     created_by=user)
    corpus = Corpus.objects.create(name="c")
    return [f"/ws/runs/{run.pk}/", f"/ws/corpora/{corpus.pk}/import/", "/ws/record/"]


def _connect(path: str, *, origin: str | None, host: str = "localhost:8000", cookie: bytes | None = None,
             scheme: str = "ws") -> tuple[bool, int | None]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie))

    async def scenario():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        communicator.scope["scheme"] = scheme
        connected, code = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return connected, code

    return asyncio.run(scenario())


@pytest.fixture
def cookie(client, user) -> bytes:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.parametrize(
    "origin,host,scheme,allowed",
    [
        ("http://localhost:8000", "localhost:8000", "ws", True),  # the studio's own page
        ("http://localhost:3000", "localhost:8000", "ws", False),  # another local web server
        ("https://localhost:8000", "localhost:8000", "ws", False),  # another scheme
        ("http://localhost", "localhost:8000", "ws", False),  # the default port is another port
        ("http://127.0.0.1:8000", "localhost:8000", "ws", False),  # another host name
        ("https://localhost", "localhost", "wss", True),  # served over TLS on the default port
        ("http://localhost", "localhost", "wss", False),
        ("http://evil.example:8000", "evil.example:8000", "ws", False),  # DNS rebinding: Host not allowed
        (None, "localhost:8000", "ws", False),  # no Origin: not a page the studio served
        ("null", "localhost:8000", "ws", False),
    ],
)
def test_origin_must_match_scheme_host_and_port(channel_layer, paths, cookie, origin, host, scheme, allowed):
    for path in paths:
        connected, code = _connect(path, origin=origin, host=host, cookie=cookie, scheme=scheme)
        assert connected is allowed, (path, origin, code)
        if not allowed:
            assert code == 4403


def test_trusted_origins_are_compared_whole(channel_layer, paths, cookie, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://studio.example.org", "https://*.lab.example.org:8443"]
    cases = {
        "https://studio.example.org": True,
        "https://studio.example.org:443": True,
        "http://studio.example.org": False,
        "https://studio.example.org:8443": False,
        "https://a.lab.example.org:8443": True,
        "https://a.lab.example.org": False,
        "https://lab.example.org.evil.example:8443": False,
    }
    for origin, allowed in cases.items():
        connected, _ = _connect(paths[0], origin=origin, cookie=cookie)
        assert connected is allowed, origin


def test_unknown_websocket_path_is_closed(channel_layer, cookie):
    for path in ("/ws/nope/", "/", "/ws/runs/abc/", "/admin/"):
        assert _connect(path, origin="http://localhost:8000", cookie=cookie) == (False, 4404), path
