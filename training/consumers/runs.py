"""Live training updates: ``ws/runs/<id>/`` joins the channel-layer group ``run-<id>``.

On connect it first sends the stored history after the client's last seen (fold, member,
epoch) (``?after_fold=F&after_member=M&after_epoch=E``; member, the model of a seed ensemble,
defaults to 1), then the messages the Celery worker pushes. It joins the group *before*
reading the history, so nothing falls between the two, and drops a live epoch that the
replay already sent (the page also ignores duplicates by (fold, member, epoch)).
The client never sends anything that is acted upon.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from training import selectors
from training.services.groups import run_group


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            after = (
                int(query.get("after_fold", ["0"])[0]),
                int(query.get("after_member", ["1"])[0]),  # 1: a page without ensembles' cursor
                int(query.get("after_epoch", ["0"])[0]),
            )
        except ValueError:
            after = (0, 0, 0)
        if not await database_sync_to_async(selectors.run_exists)(self.run_id):
            await self.close(code=4404)
            return
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await database_sync_to_async(selectors.run_snapshot)(self.run_id, after=after)
        self.sent_upto = after
        for epoch in snapshot["epochs"]:
            await self.send_json({"type": "run.epoch", "replay": True, **epoch})
            self.sent_upto = (epoch["fold"], epoch["member"], epoch["epoch"])
        await self.send_json({"type": "run.status", **snapshot["status"]})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        return  # the stream is one-way; anything the client sends is ignored (not even parsed as JSON)

    # Group messages: forwarded as they are (their "type" is dotted, e.g. "run.epoch").
    async def run_epoch(self, event: dict) -> None:
        # An epoch stored between joining the group and reading the history arrives twice:
        # once replayed, once live. Send it once.
        if (event.get("fold", 1), event.get("member", 1), event.get("epoch", 0)) <= self.sent_upto:
            return
        await self.send_json(event)

    async def run_progress(self, event: dict) -> None:
        await self.send_json(event)

    async def run_status(self, event: dict) -> None:
        await self.send_json(event)

    async def run_phase(self, event: dict) -> None:
        await self.send_json(event)

    async def run_log(self, event: dict) -> None:
        await self.send_json(event)
