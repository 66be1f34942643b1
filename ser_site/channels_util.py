"""Sending to a channel-layer group from synchronous code (Celery tasks, services)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def group_send(group: str, message: dict) -> None:
    """Best effort: a missing or unreachable channel layer must never fail the work that
    produced the update (the history is in the database; the page catches up on reconnect)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # noqa: BLE001 — log and carry on, see above
        log.warning("could not send %s to %s", message.get("type"), group, exc_info=True)
