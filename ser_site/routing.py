"""All websocket routes. Each app keeps its own list in ``<app>/routing.py``."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from recognition.routing import websocket_urlpatterns as recognition_ws
from training.routing import websocket_urlpatterns as training_ws


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other websocket path: the handshake is closed (the server answers it with 403),
    where Channels' router would raise and the server answer 500 with a traceback."""

    async def connect(self) -> None:
        await self.close(code=4404)


websocket_urlpatterns = [*training_ws, *recognition_ws, re_path(r"", NoSuchSocket.as_asgi())]
