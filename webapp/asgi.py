"""ASGI entry point (uvicorn in production, Daphne for `make run`): HTTP, and the run websocket /ws/runs/{id}/."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()

# Django must be set up before the consumers (and their models) are imported.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from webapp.runs.routing import websocket_urlpatterns  # noqa: E402
from webapp.runs.ws_auth import WebsocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": SessionMiddlewareStack(WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
})

# Import every view now rather than on a first request, then take what start-up built (Django, DRF,
# statsmodels/scipy/pandas for the review statistics: about 220k objects) out of the cyclic collector's
# reach: a full collection walked all of it, 126 ms on these cores (0 ms after the freeze), stalling
# every request in the process at once.
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()

if os.environ.get("ICM_START_WORKER", "1") == "1":
    # Embedded mode: the in-process worker, and the runs a stopped server left behind.
    from webapp.runs.startup import start_embedded_worker

    start_embedded_worker()
