"""ASGI entry point: HTTP through Django (static files included, so one server process is a
complete server), websockets through Channels with the session's user and an origin check."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ser_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from recognition.upload_guard import UploadSizeGuard  # noqa: E402
from training.services.corpora import corpus_request_limit  # noqa: E402

from .origin import WebsocketOriginValidator  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Behind a proxy, serve STATIC_ROOT (collectstatic) from the proxy instead.
        # UploadSizeGuard: oversized uploads (audio, corpora) get 413 before Django spools their body.
        "http": UploadSizeGuard(
            UploadSizeGuard(ASGIStaticFilesHandler(django_asgi_app)),
            url_names=("corpora:upload",),
            limit=lambda: settings.SER_MAX_UPLOAD_BYTES,
            request_limit=corpus_request_limit,
        ),
        # The whole origin (scheme, host, port) must be the studio's own: see ser_site.origin.
        "websocket": WebsocketOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
