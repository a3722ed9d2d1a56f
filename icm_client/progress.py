"""Waiting for runs: each run's websocket (/ws/runs/{id}/?format=json) feeds a tqdm bar with the steps of its
progress record, and a run whose websocket cannot be opened or closes early is polled over HTTP instead.

The websockets are read by threads with websockets' synchronous client, not by asyncio: a notebook already
runs an event loop, where asyncio.run() is refused."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .records import Run

# How long a websocket read waits before the thread looks whether it was told to stop.
_RECV_S = 0.5
# What a watcher reports: ("snapshot", run id, the run's JSON) or ("lost", run id, why).
_Event = tuple[str, int, Any]


class _Watcher(threading.Thread):
    """Reads one run's websocket; puts ("snapshot", id, dict) for each message and ("lost", id, reason) when the
    socket ends before the run does. Daemon: a notebook's interrupted cell leaves nothing that blocks exit."""

    def __init__(self, run_id: int, url: str, headers: dict[str, str], out: queue.Queue[_Event], stop: threading.Event,
                 open_timeout: float) -> None:
        super().__init__(name=f"icm-client-ws-{run_id}", daemon=True)
        self.run_id, self.url, self.headers, self.out, self.stop, self.open_timeout = (
            run_id, url, headers, out, stop, open_timeout)

    def run(self) -> None:
        import json

        from websockets.sync.client import connect

        try:
            with connect(self.url, additional_headers=self.headers, open_timeout=self.open_timeout,
                         close_timeout=2) as ws:
                while not self.stop.is_set():
                    try:
                        message = ws.recv(timeout=_RECV_S)
                    except TimeoutError:
                        continue
                    snap = json.loads(message)
                    self.out.put(("snapshot", self.run_id, snap))
                    if snap.get("status") not in ("queued", "running"):
                        return
            reason = "stopped"
        except Exception as exc:  # refused (close code 4401/4404, HTTP 403), a proxy without websockets, a drop
            reason = f"{type(exc).__name__}: {exc}"
        if not self.stop.is_set():
            self.out.put(("lost", self.run_id, reason))


class _Bars:
    """One tqdm bar per run: steps done of the progress record's total, the phase and U beside it."""

    def __init__(self, runs: Sequence[Run], enabled: bool) -> None:
        self.bars: dict[int, Any] = {}
        self.started: set[int] = set()
        if not enabled:
            return
        from tqdm.auto import tqdm

        for position, run in enumerate(runs):
            self.bars[run.id] = tqdm(total=run.total_steps, desc=f"run {run.id} {run.method} seed {run.seed}",
                                     position=position, leave=True, unit="step")
            self.show(run)

    def show(self, run: Run) -> None:
        bar = self.bars.get(run.id)
        if bar is None:
            return
        total, step = run.total_steps, run.step
        if run.status != "queued" and run.id not in self.started:
            # Its rate and time left count from its start, not from the time it waited behind other runs.
            self.started.add(run.id)
            bar.reset(total=total)
        if run.status == "succeeded" and total:
            step = total
        if total and bar.total != total:
            bar.total = total
        if step is not None and step != bar.n:
            bar.n = step
        postfix = {"status": run.status}
        if run.active and run.progress.get("phase"):
            postfix["phase"] = run.progress["phase"]
        if run.progress.get("score") is not None:
            postfix["U"] = f"{run.progress['score']:.2f}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def wait_for(runs: Sequence[Run], *, fetch: Callable[[int], Run], ws_url: Callable[[int], str],
             headers: dict[str, str], progress: bool, timeout: float | None, poll_s: float,
             websocket: bool = True, open_timeout: float = 10.0) -> list[Run]:
    """Block until every run has finished; returns them as they ended, in the order given. Raises
    WaitTimeout after `timeout` seconds (None: no limit)."""
    from .errors import WaitTimeout

    latest = {r.id: r for r in runs}
    out: queue.Queue[_Event] = queue.Queue()
    stop = threading.Event()
    polled: dict[int, float] = {}  # runs read over HTTP: when last
    bars = _Bars(runs, progress)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for r in runs:
            if not r.active:
                continue
            if websocket:
                _Watcher(r.id, ws_url(r.id), headers, out, stop, open_timeout).start()
            else:
                polled[r.id] = 0.0
        while any(r.active for r in latest.values()):
            wait_s = poll_s if deadline is None else max(0.01, min(poll_s, deadline - time.monotonic()))
            try:
                kind, run_id, payload = out.get(timeout=wait_s)
            except queue.Empty:
                pass
            else:
                if kind == "snapshot":
                    latest[run_id] = Run.from_json(payload)
                    bars.show(latest[run_id])
                elif latest[run_id].active:  # lost: read it over HTTP from now on
                    polled.setdefault(run_id, 0.0)
            now = time.monotonic()
            for run_id, last in list(polled.items()):
                if latest[run_id].active and now - last >= poll_s:
                    latest[run_id] = fetch(run_id)
                    polled[run_id] = now
                    bars.show(latest[run_id])
            if deadline is not None and now > deadline and any(r.active for r in latest.values()):
                raise WaitTimeout(list(latest.values()), timeout or 0.0)
    finally:
        stop.set()
        bars.close()
    # Read once more over HTTP: a websocket's snapshot leaves out a failure's traceback (error_detail), which
    # GET /api/runs/{id}/ gives the dataset's owners, and what is returned is then what the API says.
    return [fetch(r.id) for r in runs]
