"""ASGI middleware that refuses oversized audio uploads before Django reads their body.

Django's ASGI handler reads a whole request body (into memory, then a temporary file)
before any view runs, so a view can only refuse a 10 GB upload after it has been stored.
This guard sits in front of it for the upload views it is given by URL name (by default
the audio endpoints, ``POST /api/classify`` and the upload page; their paths come from the
URL configuration): a declared ``Content-Length`` over the limit is answered with 413 at
once, and a body without one (chunked) is counted as it arrives and cut off past the limit.
The views check the same limit again (:mod:`recognition.services.uploads`), so the guard is an
early exit, not the only defence.

The studio's server (uvicorn, see ``ser_site.launcher.web_server_argv``) hands the body over
as it arrives, so nothing past the limit is read. (Daphne's Twisted layer would receive the
whole body before calling the application.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.urls import reverse

from .services.uploads import format_bytes, max_request_bytes, max_upload_bytes

__all__ = ["UploadSizeGuard", "GUARDED_URLS"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# URL names (urls.py) of the views whose uploads the guard limits by default.
GUARDED_URLS = ("recognition:api_classify", "recognition:upload")


class UploadSizeGuard:
    """Wrap an ASGI HTTP app; POSTs to the views named ``url_names`` larger than the upload
    limit get a 413."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        url_names: Iterable[str] = GUARDED_URLS,
        *,
        limit: Callable[[], int] = max_upload_bytes,
        request_limit: Callable[[], int] | None = None,
    ) -> None:
        """``limit`` returns the largest file allowed (the size a refusal names); ``request_limit``
        the largest body that can carry it (default: ``limit`` plus multipart framing). Both are
        read per request, so settings apply, and so are the views' paths (from the URL
        configuration)."""
        self.app = app
        self.url_names = tuple(url_names)
        self.limit = limit
        self.request_limit = request_limit or (lambda: max_request_bytes(self.limit()))

    def paths(self) -> set[str]:
        """The guarded views' paths, as the URL configuration has them now."""
        return {reverse(name) for name in self.url_names}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths():
            await self.app(scope, receive, send)
            return
        limit = self.request_limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django treats this as the client going away and stops reading.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)
        if exceeded and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"The upload is too large: the limit is {format_bytes(self.limit())}."
        if scope["path"].startswith("/api/"):
            body = json.dumps({"error": message, "code": "too_large"}).encode()
            content_type = b"application/json"
        else:
            body = (
                f'<!doctype html><meta charset="utf-8"><title>Too large</title><p>{message}</p>'
                f'<p><a href="{scope["path"]}">Back</a></p>'
            ).encode()
            content_type = b"text/html; charset=utf-8"
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
