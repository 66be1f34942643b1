"""Websocket routes of the recognition app."""

from django.urls import path

from .consumers import RecordConsumer

websocket_urlpatterns = [path("ws/record/", RecordConsumer.as_asgi())]
