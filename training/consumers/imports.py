"""Corpus import progress: ``ws/corpora/<id>/import/`` joins the group ``import-<id>``.

On connect it sends the corpus' current state, so a page opened mid-import (or after it
finished) is correct at once; afterwards it forwards ``import.progress`` and
``import.status`` messages from the Celery worker.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from training import selectors
from training.services.groups import import_group


class ImportConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.corpus_id = int(self.scope["url_route"]["kwargs"]["corpus_id"])
        state = await database_sync_to_async(selectors.corpus_import_state)(self.corpus_id)
        if state is None:
            await self.close(code=4404)
            return
        self.group = import_group(self.corpus_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "import.status", **state})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        return

    async def import_progress(self, event: dict) -> None:
        await self.send_json(event)

    async def import_status(self, event: dict) -> None:
        await self.send_json(event)
