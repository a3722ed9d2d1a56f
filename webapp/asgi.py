"""ASGI entry point (uvicorn, in production and for `make run`): HTTP, and the run websocket /ws/runs/{id}/."""

import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
wsgi_app = get_wsgi_application()

# Pages and the API: Django's synchronous handler on a fixed pool of threads per process (a2wsgi). Every
# view and middleware here is synchronous; Django's own ASGI handler ran them through async adapters,
# crossing between the event loop and a thread several times a request and starting a new thread for
# each request (what that cost: docs/reliability.md).
from a2wsgi import WSGIMiddleware  # noqa: E402

django_http_app = WSGIMiddleware(wsgi_app, workers=settings.HTTP_THREADS)

# Django must be set up before the consumers (and their models) are imported.
from channels.routing import ProtocolTypeRouter  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from webapp.runs.routing import WebsocketRouter, websocket_urlpatterns  # noqa: E402
from webapp.runs.ws_auth import WebsocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_http_app,
    "websocket": SessionMiddlewareStack(WebsocketAuthMiddleware(WebsocketRouter(websocket_urlpatterns))),
})

# Import every view now rather than on a first request, then take what start-up built (Django, DRF,
# statsmodels/scipy/pandas for the review statistics: a few hundred thousand objects) out of the cyclic
# collector's reach: a full collection walked all of it, stalling every request in the process at once
# (docs/reliability.md).
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()

if os.environ.get("ICM_START_WORKER", "1") == "1":
    # Embedded mode: the in-process worker, and the runs a stopped server left behind.
    from webapp.runs.startup import start_embedded_worker

    start_embedded_worker()
