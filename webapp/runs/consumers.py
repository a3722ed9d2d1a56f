"""The live run page's websocket, `/ws/runs/{id}/`.

On connect it sends a full snapshot read from the database; afterwards every channel-layer hint (and
a one-second poll, in case a hint is lost) sends a fresh snapshot, at most one per
ICM_WS_MIN_INTERVAL_S (a new phase, such as a batch's end, at once), so a fast run cannot flood the
browser. A progress hint carries the columns the worker wrote; they are applied to the last snapshot
without a database read (under load, reads wait for this process's one thread for sync code, behind
the page views). The poll reads the database, so the user's access and the run's state are checked
again every second. The browser gets HTML fragments for the htmx websocket extension; `?format=json`
gets JSON snapshots instead (API clients).
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404
from django.template.loader import render_to_string

from . import live
from .live import group_name
from .selectors import get_run, snapshot

POLL_S = 1.0


class Clock:
    """The time the throttle reads and waits on: real time here; a test injects one it moves by hand."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@database_sync_to_async
def _load(user, run_id: int):
    try:
        run = get_run(user, run_id)
    except Http404:
        return None
    return snapshot(run)


def _render(snap: dict) -> str:
    # `pushed`: the fragment replaces the page's, and may retract what the page said when it was loaded.
    return render_to_string("runs/_live.html", {"snap": snap, "pushed": True})


class RunConsumer(AsyncWebsocketConsumer):
    clock = Clock()

    async def connect(self):
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        snap = await _load(self.user, self.run_id)
        if snap is None:  # not a member of the run's dataset, or no such run: the same answer
            await self.close(code=4404)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        self.json = query.get("format", [""])[0] == "json"
        self.last_sent = 0.0
        self.last_updated = None
        self.snap: dict | None = None  # the last snapshot sent
        self.pushed: dict | None = None  # a newer one built from a hint's fields, not yet sent
        self.pending: asyncio.Task | None = None
        self.verified = self.clock.now()  # when the user's access was last read from the database
        self.stale = False  # a hint without fields came: the next refresh reads the database
        self.sent_count = 0
        # A hint and the poll can both decide to refresh; the snapshot load awaits the database, so
        # without this the second would not yet see the first's send and both would go out at once.
        self.sending = asyncio.Lock()
        live.server_loop = asyncio.get_running_loop()
        await self.channel_layer.group_add(group_name(self.run_id), self.channel_name)
        await self.accept()
        await self._send(snap)
        self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code):
        if not hasattr(self, "poller"):
            return
        self.poller.cancel()
        if self.pending is not None:
            self.pending.cancel()
        await self.channel_layer.group_discard(group_name(self.run_id), self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # The page has nothing to say; a client may ask for a fresh snapshot with "snapshot".
        if text_data and text_data.strip() == "snapshot":
            async with self.sending:
                await self._refresh(force=True)

    async def run_changed(self, event):
        fields = event.get("fields")
        if fields and self.snap is not None:
            self.pushed = {**(self.pushed or self.snap), **fields}
        else:  # status, attempts, label set...: only the database has them
            self.stale = True
        await self._schedule()

    async def _schedule(self) -> None:
        async with self.sending:
            wait = settings.ICM_WS_MIN_INTERVAL_S - (self.clock.now() - self.last_sent)
            if wait <= 0 or self._new_phase():
                await self._refresh()
                return
        await self._schedule_later(wait)

    async def _schedule_later(self, wait: float | None = None) -> None:
        if wait is None:
            wait = settings.ICM_WS_MIN_INTERVAL_S - (self.clock.now() - self.last_sent)
        if self.pending is None or self.pending.done():
            self.pending = asyncio.create_task(self._later(wait))

    async def _later(self, wait: float) -> None:
        while True:
            await self.clock.sleep(wait)
            async with self.sending:
                # Another path may have sent meanwhile: then wait out the interval again.
                wait = settings.ICM_WS_MIN_INTERVAL_S - (self.clock.now() - self.last_sent)
                if wait <= 0:
                    await self._refresh()
                    return

    async def _poll(self) -> None:
        # The database read happens outside the send lock: under load it waits for this process's thread
        # for sync code, and a hint's pushed snapshot must not wait behind it.
        while True:
            await asyncio.sleep(POLL_S)
            sent = self.sent_count
            snap = await _load(self.user, self.run_id)
            if snap is None:  # membership revoked or run deleted while watching
                await self.close(code=4404)
                return
            self.verified = self.clock.now()
            async with self.sending:
                # Only if nothing went out meanwhile (a pushed snapshot may be newer than this read).
                if sent == self.sent_count and self._stamp(snap) != self.last_updated:
                    if self.clock.now() - self.last_sent >= settings.ICM_WS_MIN_INTERVAL_S:
                        await self._send(snap)
                    else:
                        self.stale = True
                        await self._schedule_later()

    def _new_phase(self) -> bool:
        """A pushed snapshot that ends a batch or the search (a new phase) goes out at once, not after the
        throttle's wait: it comes right behind the last iteration's, and the worker writes the next
        iteration's no sooner than ICM_PROGRESS_S later, so this adds at most one message per interval."""
        if self.pushed is None or self.snap is None:
            return False
        return self.pushed["progress"].get("phase") != self.snap["progress"].get("phase")

    @staticmethod
    def _stamp(snap: dict) -> tuple:
        return snap["status"], snap["progress"].get("updated"), snap["cancel_requested"], snap["attempts"]

    async def _refresh(self, force: bool = False) -> None:
        snap, self.pushed = self.pushed, None
        # The poll checks access every second; should its reads fall behind, a pushed snapshot waits for one.
        if snap is None or force or self.stale or self.clock.now() - self.verified > 3 * POLL_S:
            self.stale = False
            snap = await _load(self.user, self.run_id)
            if snap is None:  # membership revoked or run deleted while watching
                await self.close(code=4404)
                return
            self.verified = self.clock.now()
        if force or self._stamp(snap) != self.last_updated:
            await self._send(snap)

    async def _send(self, snap: dict) -> None:
        self.snap = snap
        self.sent_count += 1
        self.last_sent = self.clock.now()
        self.last_updated = self._stamp(snap)
        if self.json:
            await self.send(text_data=json.dumps(snap))
        else:
            # Rendering reads nothing from the database: a pool thread, not the one for sync code.
            await self.send(text_data=await sync_to_async(_render, thread_sensitive=False)(snap))



