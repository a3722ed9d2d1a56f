"""Progress: engine events turned into throttled progress records, checkpoints and live-page hints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from icm_engine.facade import SearchEvent, TimeLeft, label_metrics

from ..live import notify
from ..models import Run
from ..progress import RunProgress, stored
from .lease import Cancelled, Heartbeat, LeaseLost

HISTORY_POINTS = 600
RECENT_CHANGES = 15


class Recorder:
    """Turns engine events into throttled progress snapshots, checkpoints and live-page hints."""

    def __init__(self, run: Run, lease: str, heartbeat: Heartbeat, gold: list[bool | None], total_steps: int,
                 first_step: int = 0, batch_steps: int | None = None):
        self.run_id = run.pk
        self.parent_id = run.parent_id
        # A shard counts its steps from its first batch.
        self.first_step = first_step
        self.lease = lease
        self.heartbeat = heartbeat
        self.gold = gold
        self.has_gold = any(g is not None for g in gold)
        self.total_steps = max(total_steps, 1)
        self.history: list = list(run.history or [])
        self.changes: list = list((run.progress or {}).get("recent_changes", []))
        self.last_progress = 0.0
        self.t0 = time.monotonic()
        self.done = 0
        self.last_position: dict[str, Any] | None = None
        self.batch_u: dict[str, float] = dict((run.progress or {}).get("batch_u") or {})
        # ICM's time left counts the model work still to do (batch_steps: its iterations); a baseline's, its steps.
        self.time_left = TimeLeft(self.total_steps, batch_steps)

    def should_stop(self) -> bool:
        return self.heartbeat.lost.is_set() or self.heartbeat.cancel.is_set()

    def compare(self, labels: list[bool | None], scores: list[float | None] | None = None) -> dict[str, Any]:
        """The labels so far against gold (nothing without gold), as the progress record holds them: the
        comparison with its majority rate, balance and warnings, and the bare rate and n the plot and a
        sharded run's pooling read."""
        if not self.has_gold:
            return {"gold": None, "gold_agreement": None, "gold_n": 0}
        c = label_metrics(labels, self.gold, scores)
        return {"gold": c, "gold_agreement": c["accuracy"], "gold_n": c["n"]}

    def record_batch_u(self, batch: int, score: float) -> None:
        """Each finished batch's final U (the search's own objective, no gold involved): a seed's final U is
        their mean, which picks among seeds without labels."""
        self.batch_u[str(batch)] = round(score, 4)

    def u_fields(self) -> dict[str, Any]:
        values = list(self.batch_u.values())
        return {"batch_u": dict(self.batch_u), "final_u": round(sum(values) / len(values), 4) if values else None}

    def _write(self, **fields: Any) -> None:
        if not Run.objects.filter(pk=self.run_id, lease=self.lease).update(**fields):
            raise LeaseLost()
        # What the live page shows of these columns, as its snapshot has them (copies: the in-memory layer
        # sends from the server's thread while this one goes on appending to the history).
        shown: dict[str, Any] = {"progress": fields["progress"]} if "progress" in fields else {}
        if "history" in fields:
            shown["history"] = list(fields["history"])
        if "checkpointed" in fields:
            shown["checkpointed"] = fields["checkpointed"].isoformat()
        notify(self.run_id, shown)
        if self.parent_id:
            notify(self.parent_id)

    def _progress(self, step: int, elapsed: float, **values: Any) -> dict[str, Any]:
        eta = self.time_left.update(step, elapsed, values.get("model_calls"))
        return RunProgress(step=step, total_steps=self.total_steps, elapsed_s=round(elapsed, 2),
                           eta_s=None if eta is None else round(eta, 1), recent_changes=self.changes[-RECENT_CHANGES:],
                           updated=timezone.now().isoformat(), **values).as_dict()

    def _thin(self) -> None:
        if len(self.history) > HISTORY_POINTS:
            self.history = self.history[::2]

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """The search state, written between iterations (the engine's job says when)."""
        self._write(checkpoint=state, checkpointed=timezone.now())

    def on_event(self, ev: SearchEvent, labels: Sequence[bool | None]) -> None:
        """A search event with the labels so far: the progress record, at most every ICM_PROGRESS_S (a batch's
        end and the search's at once)."""
        step = ev.batch * ev.iterations + ev.iteration - self.first_step
        for ex_id, label in ev.changed:
            self.changes.append({"id": str(ex_id), "label": label, "step": step})
        self.changes = self.changes[-RECENT_CHANGES:]
        now = time.monotonic()
        final = ev.kind in ("batch_done", "done")
        if ev.kind == "batch_done":
            self.record_batch_u(ev.batch, ev.score)
        if not final and now - self.last_progress < settings.ICM_PROGRESS_S:
            return
        self.last_progress = now
        gold = self.compare(list(labels))
        rate = gold["gold_agreement"]
        position = {"batch": ev.batch, "iteration": ev.iteration, "temperature": round(ev.temperature, 4),
                    "score": round(ev.score, 4)}
        if ev.kind == "done":
            # The search has reset its per-batch state by now: report where the last batch ended instead.
            position = self.last_position or position
            step = self.total_steps
        else:
            self.last_position = position
            self.history.append([step, round(ev.score, 4), None if rate is None else round(rate, 4)])
            self._thin()
        progress = self._progress(
            step, ev.elapsed_s, phase=ev.kind, batches=ev.batches, iterations=ev.iterations, **position,
            labeled=ev.labeled, size=ev.size, accepted=ev.accepted_total, rejected=ev.rejected_total,
            conflicts=ev.conflicts, **gold, **self.u_fields(), **ev.stats.as_dict())
        self._write(progress=progress, history=self.history)

    def on_baseline_progress(self, n: int, size: int, stats: Any) -> None:
        self.done += n
        if self.should_stop():
            raise LeaseLost() if self.heartbeat.lost.is_set() else Cancelled()
        elapsed = time.monotonic() - self.t0
        progress = self._progress(
            self.done, elapsed, phase="baseline", labeled=self.done, size=size, **stats.as_dict())
        self._write(progress=progress)


def set_phase(run: Run, lease: str, phase: str) -> None:
    """Say what the run is doing before its engine reports anything (loading the model can take a minute)
    or after it stopped reporting (writing the labels)."""
    current = Run.objects.filter(pk=run.pk).values_list("progress", flat=True).first()
    progress = stored(current, phase=phase, updated=timezone.now().isoformat())
    # Written only while this execution holds the run; a lost lease shows at the next write that must hold it.
    # A page reads the whole row again (no fields in the hint): the claim just changed the status too.
    if Run.objects.filter(pk=run.pk, lease=lease).update(progress=progress):
        notify(run.pk)
