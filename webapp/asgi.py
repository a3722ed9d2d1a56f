"""ASGI entry point (Daphne): HTTP, and the run progress websocket at /ws/runs/{id}/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

# Django must be set up before the consumers (and their models) are imported.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402

from webapp.runs.routing import websocket_urlpatterns  # noqa: E402
from webapp.runs.ws_auth import WebsocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": SessionMiddlewareStack(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
})

if os.environ.get("ICM_START_WORKER", "1") == "1":
    # Embedded mode: the in-process worker, and the runs a stopped server left behind.
    from webapp.runs.startup import start_embedded_worker

    start_embedded_worker()
