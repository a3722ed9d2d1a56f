from django.urls import path

import webapp.ids  # noqa: F401  (registers the <id:name> path converter)

from .consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<id:run_id>/", RunConsumer.as_asgi()),
]
