"""Handing runs to whatever executes them here (Celery workers or the embedded thread), and re-handing the
ones nobody is executing."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import embedded
from .models import Run, RunStatus


def dispatch(run_id: int) -> None:
    """Hand a run to whatever executes runs here. Only ever called after the row is committed."""
    if settings.ICM_RUN_DISPATCH == "celery":
        from webapp.celery import app

        # By the task's name: this module never imports the tasks that import it.
        app.send_task("runs.execute", args=[run_id])
    elif settings.ICM_RUN_DISPATCH == "embedded":
        embedded.submit(run_id)
    # "none": runs wait for an explicit execute_run (tests of the queueing itself).


def recover_runs(*, startup: bool = False) -> list[int]:
    """Re-dispatch runs nobody is executing: running with a stale heartbeat, or queued with a lost message.

    At the start of an embedded server every active run is orphaned (its thread died with the old
    process), so all of them go back to the queue at once.
    """
    now = timezone.now()
    if startup:
        # A sharded run's parent executes nothing: only its shards are re-queued.
        Run.objects.filter(status=RunStatus.RUNNING, shard_count=0).update(status=RunStatus.QUEUED, lease="")
        ids = list(Run.objects.filter(status=RunStatus.QUEUED).order_by("created").values_list("pk", flat=True))
    else:
        stale = now - timedelta(seconds=settings.ICM_RUN_LEASE_S)
        requeue = now - timedelta(seconds=max(settings.ICM_RUN_LEASE_S * 5, 60))
        ids = list(
            Run.objects.filter(Q(status=RunStatus.RUNNING, heartbeat__lt=stale)
                               | Q(status=RunStatus.QUEUED, dispatched__lt=requeue), shard_count=0)
            .order_by("created").values_list("pk", flat=True)
        )
    for run_id in ids:
        Run.objects.filter(pk=run_id).update(dispatched=now)
        dispatch(run_id)
    return ids
