"""Live pages: the hint that a run's row changed, sent to the websockets watching it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync

log = logging.getLogger(__name__)

# The web server's event loop, where the in-memory channel layer lives (set by the first websocket).
server_loop: asyncio.AbstractEventLoop | None = None


def group_name(run_id: int) -> str:
    return f"run-{run_id}"


def notify(run_id: int, fields: dict[str, Any] | None = None) -> None:
    """Tell live pages that the run's row changed. Only a hint: a lost one costs a second's delay.
    `fields`, when given, are the changed columns as written (progress, history): a page that has the
    run's snapshot applies them without reading the database, which keeps delivery fast under load."""
    try:
        from channels.layers import InMemoryChannelLayer, get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        message: dict[str, Any] = {"type": "run.changed"}
        if fields:
            message["fields"] = fields
        loop = server_loop
        if isinstance(layer, InMemoryChannelLayer):
            # The in-memory layer lives in the server's event loop: hand the send to that loop, thread-safely.
            if loop is not None and loop.is_running():
                asyncio.run_coroutine_threadsafe(layer.group_send(group_name(run_id), message), loop)
            return
        async_to_sync(layer.group_send)(group_name(run_id), message)
    except Exception:  # the channel layer being down must never fail a run
        log.debug("progress hint for run %s not sent", run_id, exc_info=True)
