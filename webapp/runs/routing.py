import logging

from channels.routing import URLRouter
from django.urls import path

import webapp.ids  # noqa: F401  (registers the <id:name> path converter)

from .consumers import RunConsumer

log = logging.getLogger(__name__)

websocket_urlpatterns = [
    path("ws/runs/<id:run_id>/", RunConsumer.as_asgi()),
]


class WebsocketRouter:
    """Channels' URLRouter, with a 404 for a path it has no route for (its own answer is a ValueError: a 500 and
    a traceback in the log, to anyone, signed in or not). Where the server takes the ASGI denial-response
    extension the client gets an HTTP 404; elsewhere the handshake is refused (the server answers 403)."""

    def __init__(self, routes):
        self.router = URLRouter(routes)

    async def __call__(self, scope, receive, send):
        try:
            return await self.router(scope, receive, send)
        except ValueError as exc:
            if not str(exc).startswith("No route found"):
                raise
        log.info("websocket %s: no such path", scope.get("path", "")[:200])
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 404,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "websocket.http.response.body", "body": b"No such websocket path."})
        else:
            await send({"type": "websocket.close", "code": 4404})
