"""Claim and lease: an execution first claims the run (a fresh lease token, only if the run is queued or its
last owner's heartbeat is stale), then keeps a heartbeat while it works. Every write it makes is guarded by
its lease, so an execution that was presumed dead and replaced can never overwrite its successor."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Run, RunStatus

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def claim(run_id: int) -> str | None:
    """Take the run if it is queued or its owner's heartbeat is stale; return the new lease, else None."""
    token = uuid.uuid4().hex
    now = timezone.now()
    stale = now - timedelta(seconds=settings.ICM_RUN_LEASE_S)
    taken = (
        Run.objects.filter(pk=run_id, shard_count=0)
        .filter(Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, heartbeat__lt=stale)
                | Q(status=RunStatus.RUNNING, heartbeat__isnull=True))
        .update(status=RunStatus.RUNNING, lease=token, heartbeat=now, worker=worker_name()[:255],
                attempts=F("attempts") + 1, started=Coalesce(F("started"), now), error="")
    )
    return token if taken else None


class LeaseLost(Exception):
    """Another execution owns the run now: stop without writing anything more."""


class Cancelled(Exception):
    pass


class Heartbeat(threading.Thread):
    """Keeps the lease alive and watches for a cancel request, independently of how long a model call takes."""

    def __init__(self, run_id: int, lease: str, interval: float):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.run_id, self.lease, self.interval = run_id, lease, interval
        self.stop_event = threading.Event()
        self.lost = threading.Event()
        self.cancel = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.interval):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            if not Run.objects.filter(pk=self.run_id, lease=self.lease).update(heartbeat=timezone.now()):
                self.lost.set()
                return
            if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                self.cancel.set()
        except Exception:  # a database blip: the next beat tries again
            log.warning("heartbeat of run %s failed", self.run_id, exc_info=True)
            close_old_connections()
