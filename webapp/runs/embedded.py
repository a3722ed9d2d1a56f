"""Embedded mode (no REDIS_URL): runs execute in a worker thread inside the web server process."""

from __future__ import annotations

import logging
import queue
import threading

from django.db import connection

log = logging.getLogger(__name__)

_queue: queue.Queue[int] = queue.Queue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _work() -> None:
    from .execution import execute_run

    while True:
        run_id = _queue.get()
        try:
            execute_run(run_id)
        except Exception:  # execute_run records failures itself; keep the worker alive
            log.exception("embedded worker: run %s", run_id)
        finally:
            connection.close()
            _queue.task_done()


def ensure_started() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_work, name="icm-embedded-worker", daemon=True)
            _thread.start()


def submit(run_id: int) -> None:
    ensure_started()
    _queue.put(run_id)


def wait_idle() -> None:
    """Block until every submitted run has been executed (tests and shutdown)."""
    _queue.join()
