"""What the web server does when it starts: in embedded mode, start the worker thread and pick up the
runs the previous process left queued or running (they resume from their checkpoints)."""

from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger(__name__)


def start_embedded_worker() -> None:
    if settings.ICM_RUN_DISPATCH != "embedded":
        return
    from . import embedded
    from .dispatch import recover_runs

    embedded.ensure_started()
    try:
        resumed = recover_runs(startup=True)
    except Exception:  # e.g. migrations not applied yet: the server still starts
        log.warning("could not resume runs at start-up", exc_info=True)
        return
    if resumed:
        log.info("resuming runs left by the previous server: %s", resumed)
