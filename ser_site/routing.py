"""All websocket routes. Each app keeps its own list in ``<app>/routing.py``."""

from recognition.routing import websocket_urlpatterns as recognition_ws
from training.routing import websocket_urlpatterns as training_ws

websocket_urlpatterns = [*training_ws, *recognition_ws]
