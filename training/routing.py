from django.urls import path

from .consumers import ImportConsumer, RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/corpora/<int:corpus_id>/import/", ImportConsumer.as_asgi()),
]
