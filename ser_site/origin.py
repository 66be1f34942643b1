"""The websocket origin check: a browser page may open the studio's websockets only if it
was served by the studio itself.

A browser attaches the user's session cookie to a websocket handshake whatever page opens
it, so the ``Origin`` header is the only thing that tells the studio's own pages from any
other page on the same machine or network. Channels' ``AllowedHostsOriginValidator``
compares host names only, so ``http://localhost:3000`` passed for a studio on
``localhost:8000``. This compares the whole origin, scheme, host and port, as Django's CSRF
check does for forms: the request's own origin (its scheme and ``Host`` header, the host
being one of ``ALLOWED_HOSTS``) or one listed in ``CSRF_TRUSTED_ORIGINS`` (where
``https://*.example.org`` allows subdomains, as for CSRF).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

__all__ = ["WebsocketOriginValidator", "origin_allowed"]

Scope = dict[str, Any]
Origin = tuple[str, str, int]  # scheme, lower-case host, port
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _parse(origin: str) -> Origin | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _own_origin(scope: Scope, host_header: str) -> Origin | None:
    """The origin the studio serves this connection from, if its Host is an allowed one."""
    domain, _ = split_domain_port(host_header)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = _HTTP_SCHEMES.get(scope.get("scheme", "ws"), "http")
    return _parse(f"{scheme}://{host_header}")


def _trusted(origin: Origin, pattern: str) -> bool:
    """``pattern`` from CSRF_TRUSTED_ORIGINS; ``https://*.example.org`` matches its subdomains."""
    wildcard = "://*." in pattern
    parsed = _parse(pattern.replace("://*.", "://", 1) if wildcard else pattern)
    if parsed is None or (origin[0], origin[2]) != (parsed[0], parsed[2]):
        return False
    return is_same_domain(origin[1], "." + parsed[1]) if wildcard else origin[1] == parsed[1]


def origin_allowed(scope: Scope) -> bool:
    """Whether the handshake in ``scope`` comes from a page the studio served (see module doc)."""
    headers = dict(scope.get("headers", []))
    raw_origin, raw_host = headers.get(b"origin"), headers.get(b"host")
    if raw_origin is None:
        return False  # every browser sends one; a client that does not is no browser page
    origin = _parse(raw_origin.decode("latin-1"))
    if origin is None:
        return False
    own = _own_origin(scope, raw_host.decode("latin-1")) if raw_host else None
    return origin == own or any(_trusted(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


class WebsocketOriginValidator:
    """ASGI middleware: a websocket handshake from a foreign origin is closed before it reaches
    the application (the server answers the handshake with 403)."""

    def __init__(self, app: Callable[[Scope, Callable, Callable], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 4403})
            return
        await self.app(scope, receive, send)
