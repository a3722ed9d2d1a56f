"""Child processes of the measuring scripts (loadtest.py, scalebench.py): Celery workers and web servers on
this machine, each in its own process group so that stopping it stops what it forked (uvicorn's worker
processes, for one, outlived a killed supervisor and kept serving)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def spawn(args: list[str], *, log: Path, env: dict[str, str], nice: int = 0) -> subprocess.Popen:
    """`python -m <args>` from the project folder, its output in `log`; `nice`: a lower CPU priority."""
    p = subprocess.Popen([sys.executable, "-m", *args], cwd=settings.BASE_DIR, env=env, stdout=log.open("w"),
                         stderr=subprocess.STDOUT, start_new_session=True)
    if nice:
        os.setpriority(os.PRIO_PROCESS, p.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    return p


def stop(procs: list[subprocess.Popen], grace_s: float = 20.0) -> None:
    """SIGTERM to each group, then SIGKILL to any group still there after `grace_s`."""
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace_s)
        _signal_group(p, signal.SIGKILL)  # the leader may be gone while its children are not
        p.wait()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, sig)
