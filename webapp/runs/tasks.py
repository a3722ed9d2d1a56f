"""Celery tasks. They only call the run function: the database row decides whether there is work."""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

log = logging.getLogger(__name__)


@shared_task(name="runs.execute", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute(run_id: int) -> str:
    from .execution import execute_run

    return execute_run(run_id)


_stop = threading.Event()


def _recovery_loop() -> None:
    from django.db import close_old_connections

    from .dispatch import recover_runs

    interval = max(1.0, settings.ICM_RUN_LEASE_S / 2)
    while not _stop.is_set():
        try:
            close_old_connections()
            recovered = recover_runs()
            if recovered:
                log.info("re-queued runs whose worker stopped: %s", recovered)
        except Exception:  # the next round tries again
            log.warning("run recovery failed", exc_info=True)
        _stop.wait(interval)


@worker_ready.connect
def start_recovery(**kwargs) -> None:
    """Every worker watches for runs whose owner died (stale heartbeat) or whose message was lost."""
    threading.Thread(target=_recovery_loop, name="run-recovery", daemon=True).start()


@worker_shutdown.connect
def stop_recovery(**kwargs) -> None:
    _stop.set()
