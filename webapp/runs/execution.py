"""The run function: the same code in a Celery worker and in the embedded worker thread.

An execution first *claims* the run (a fresh lease token, only if the run is queued or its last
owner's heartbeat is stale), then keeps a heartbeat while it works. Every write it makes is guarded
by its lease, so an execution that was presumed dead and replaced can never overwrite its successor.
The search state goes to the database every few seconds; a new execution resumes from it and ends
with the labels an uninterrupted run of the same seed would have given.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from icm_engine.facade import (
    EngineExample,
    ICMConfig,
    ICMSearch,
    LoadedData,
    SearchEvent,
    Task,
    TimeLeft,
    get_task,
    label_metrics,
    limit_examples,
    make_batches,
    run_baseline,
)
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetKind, LabelSetSource
from webapp.datasets.selectors import latest_gold, next_version
from webapp.datasets.services import labels_changed

from .backends import build_backend
from .live import notify
from .models import ACTIVE, Run, RunMethod, RunStatus
from .selectors import shard_progress

log = logging.getLogger(__name__)

HISTORY_POINTS = 600
RECENT_CHANGES = 15


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


def dataset_examples(dataset: Dataset, limit: int | None) -> list[EngineExample]:
    """The examples as the engine sees them: no labels, in import order, the first `limit` (whole groups)."""
    rows = Example.objects.filter(dataset=dataset).order_by("position").values_list(
        "external_id", "fields", "group", "consistency_key")
    examples = [EngineExample(uid=i, id=ext, fields=fields, group=group, key=key)
                for i, (ext, fields, group, key) in enumerate(rows)]
    return limit_examples(LoadedData(examples), limit).examples


def load_inputs(run: Run) -> tuple[list[EngineExample], Task, list[bool | None]]:
    """The examples as the engine sees them (no labels), the task, and gold by position (monitoring only)."""
    dataset = run.dataset
    task = get_task(dataset.task, template=dataset.template, consistency=dataset.consistency)
    examples = dataset_examples(dataset, run.limit)
    gold_set = latest_gold(dataset)
    gold_by_id = dict(Label.objects.filter(label_set=gold_set).values_list("example__external_id", "value")) \
        if gold_set else {}
    return examples, task, [gold_by_id.get(ex.id) for ex in examples]


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
        self.search: ICMSearch | None = None
        self.last_progress = 0.0
        self.last_checkpoint = time.monotonic()
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

    def _snapshot(self, values: dict[str, Any], step: int, elapsed: float) -> dict[str, Any]:
        eta = self.time_left.update(step, elapsed, values.get("model_calls"))
        values.update(step=step, total_steps=self.total_steps, elapsed_s=round(elapsed, 2),
                      eta_s=None if eta is None else round(eta, 1), recent_changes=self.changes[-RECENT_CHANGES:],
                      updated=timezone.now().isoformat())
        return values

    def _thin(self) -> None:
        if len(self.history) > HISTORY_POINTS:
            self.history = self.history[::2]

    def on_event(self, ev: SearchEvent) -> None:
        search = self.search
        assert search is not None
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
        gold = self.compare(search.state.labels)
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
        progress = self._snapshot({
            "phase": ev.kind, "batches": ev.batches, "iterations": ev.iterations, **position,
            "labeled": ev.labeled, "size": ev.size, "accepted": ev.accepted_total, "rejected": ev.rejected_total,
            "conflicts": ev.conflicts, **gold, **self.u_fields(), "model_calls": ev.model_calls,
            "prompts": ev.prompts, "prompt_tokens": ev.prompt_tokens, "computed_tokens": ev.computed_tokens,
        }, step, ev.elapsed_s)
        self._write(progress=progress, history=self.history)
        # Checkpoint between iterations only: that is where the search state is whole. A write of its own,
        # after the progress one: serialising a large dataset's state (labels, score cache) takes long
        # enough that live pages would otherwise get the progress that much later.
        if ev.kind == "iteration" and now - self.last_checkpoint >= settings.ICM_CHECKPOINT_S:
            self._write(checkpoint=search.checkpoint(), checkpointed=timezone.now())
            self.last_checkpoint = now

    def on_baseline_progress(self, n: int, size: int, stats: Any) -> None:
        self.done += n
        if self.should_stop():
            raise LeaseLost() if self.heartbeat.lost.is_set() else Cancelled()
        elapsed = time.monotonic() - self.t0
        progress = self._snapshot({
            "phase": "baseline", "labeled": self.done, "size": size, "model_calls": stats.calls,
            "prompts": stats.prompts, "prompt_tokens": stats.prompt_tokens, "computed_tokens": stats.computed_tokens,
        }, self.done, elapsed)
        self._write(progress=progress)


def _finish(run_id: int, lease: str, status: str, labels: list[bool | None] | None, scores: list[float | None] | None,
            examples: list[EngineExample], provenance: dict[str, Any], progress_extra: dict[str, Any],
            keep_checkpoint: bool, checkpoint: dict[str, Any] | None = None) -> None:
    """Write the outcome in one transaction, only while this execution still holds the lease."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.lease != lease:
            raise LeaseLost()
        labeled = [(ex, y, s) for ex, y, s in zip(examples, labels or [], scores or [], strict=False) if y is not None]
        if run.parent_id:
            label_set = _shard_labels(run, [str(ex.id) for ex in examples], labeled, provenance)
        else:
            label_set = _new_label_set(run, labeled, provenance, partial=status != RunStatus.SUCCEEDED
                                       or len(labeled) < len(examples)) if labeled else None
        run.status = status
        run.finished = timezone.now()
        if not run.parent_id:  # a shard's labels live in its parent's label set
            run.label_set = label_set or run.label_set
        run.progress = {**(run.progress or {}), **progress_extra, "phase": status}
        if checkpoint is not None:
            run.checkpoint, run.checkpointed = checkpoint, timezone.now()
        if not keep_checkpoint:
            run.checkpoint = None
        run.lease = ""
        run.save()
    notify(run_id)
    if run.parent_id:
        settle_parent(run.parent_id)


def _new_label_set(run: Run, labeled: list, provenance: dict[str, Any], partial: bool) -> LabelSet:
    name = f"{run.method} run {run.pk}"
    label_set = LabelSet.objects.create(
        dataset_id=run.dataset_id,
        kind=LabelSetKind.ICM if run.method == RunMethod.ICM else LabelSetKind.BASELINE,
        name=name, version=next_version(run.dataset_id, name), source=LabelSetSource.RUN,
        created_by_id=run.created_by_id, run_id=run.pk, model=provenance.get("model", "")[:255],
        configuration=provenance, partial=partial,
    )
    _write_labels(label_set, run.dataset_id, labeled)
    return label_set


def _write_labels(label_set: LabelSet, dataset_id: int, labeled: list) -> None:
    ids = dict(Example.objects.filter(dataset_id=dataset_id, external_id__in=[str(ex.id) for ex, _, _ in labeled])
               .values_list("external_id", "pk"))
    Label.objects.bulk_create(
        [Label(label_set=label_set, example_id=ids[str(ex.id)], value=bool(y),
               score=None if s is None else float(s)) for ex, y, s in labeled],
        batch_size=2000,
    )
    labels_changed(label_set.pk)


def _shard_labels(run: Run, shard_ids: list[str], labeled: list, provenance: dict[str, Any]) -> LabelSet | None:
    """A shard writes into its parent's one label set (partial until every shard has succeeded),
    replacing what an earlier, cancelled attempt of the same shard left there."""
    parent = Run.objects.select_for_update().get(pk=run.parent_id)
    label_set = parent.label_set
    if label_set is None:
        if not labeled:
            return None
        prov = {**provenance, "run": parent.pk, "shards": parent.shard_count}
        label_set = _new_label_set(parent, [], prov, partial=True)
        parent.label_set = label_set
        parent.save(update_fields=["label_set"])
    Label.objects.filter(label_set=label_set, example__dataset_id=run.dataset_id,
                         example__external_id__in=shard_ids).delete()
    _write_labels(label_set, run.dataset_id, labeled)
    return label_set


def settle_parent(parent_id: int) -> None:
    """Bring a sharded run's status and progress up to date with its shards: running while any is active;
    then succeeded (the label set is whole), failed (naming the shard) or cancelled."""
    with transaction.atomic():
        parent = Run.objects.select_for_update().get(pk=parent_id)
        children = list(parent.shards.order_by("pk").values("pk", "status", "error", "progress"))
        statuses = {c["status"] for c in children}
        progress = {**(parent.progress or {}), **shard_progress(children)}
        if statuses & set(ACTIVE):
            status, error, finished = RunStatus.RUNNING, "", None
        elif statuses == {RunStatus.SUCCEEDED}:
            status, error, finished = RunStatus.SUCCEEDED, "", timezone.now()
        elif RunStatus.FAILED in statuses:
            bad = next(c for c in children if c["status"] == RunStatus.FAILED)
            status, error = RunStatus.FAILED, f"shard run {bad['pk']} failed: {bad['error'].splitlines()[0][:500]}"
            finished = timezone.now()
        else:
            status, error, finished = RunStatus.CANCELLED, "", timezone.now()
        progress["phase"] = status
        parent.status, parent.error, parent.progress, parent.finished = status, error, progress, finished
        parent.save(update_fields=["status", "error", "progress", "finished"])
        if parent.label_set_id:
            whole = status == RunStatus.SUCCEEDED and progress["labeled"] >= progress["size"]
            LabelSet.objects.filter(pk=parent.label_set_id).update(partial=not whole)
    notify(parent_id)


def _described(prov: dict[str, Any], backend: Any) -> dict[str, Any]:
    """The provenance with the backend as it describes itself after the work (a server backend learns
    only on its first call whether it gets exact label log-probabilities)."""
    return {**prov, "backend": backend.describe()} if hasattr(backend, "describe") else prov


def provenance_of(run: Run, task: Task, backend_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run.pk, "method": run.method, "seed": run.seed, "limit": run.limit, "config": run.config,
        "task": task.describe(), "backend": backend_info, "model": str(backend_info.get("model") or run.model),
    }


def set_phase(run: Run, lease: str, phase: str) -> None:
    """Say what the run is doing before its engine reports anything (loading the model can take a minute)
    or after it stopped reporting (writing the labels)."""
    current = Run.objects.filter(pk=run.pk).values_list("progress", flat=True).first() or {}
    progress = {**current, "phase": phase, "updated": timezone.now().isoformat()}
    # Written only while this execution holds the run; a lost lease shows at the next write that must hold it.
    # A page reads the whole row again (no fields in the hint): the claim just changed the status too.
    if Run.objects.filter(pk=run.pk, lease=lease).update(progress=progress):
        notify(run.pk)


def execute_run(run_id: int) -> str:
    """Claim and execute a run; returns what happened (for logs). Safe to call twice: a second call
    for a run someone else owns, or that is finished, does nothing."""
    lease = claim(run_id)
    if lease is None:
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        log.info("run %s not claimed (status %s)", run_id, status)
        return f"skipped ({status})"
    run = Run.objects.select_related("dataset").get(pk=run_id)
    set_phase(run, lease, "loading")
    heartbeat = Heartbeat(run_id, lease, interval=min(1.0, settings.ICM_RUN_LEASE_S / 4))
    heartbeat.start()
    try:
        examples, task, gold = load_inputs(run)
        backend = build_backend(run.backend, run.model, run.backend_options)
        info = backend.describe() if hasattr(backend, "describe") else {"backend": run.backend}
        prov = provenance_of(run, task, info)
        if run.method == RunMethod.ICM:
            return _execute_icm(run, lease, heartbeat, examples, task, gold, backend, prov)
        return _execute_baseline(run, lease, heartbeat, examples, task, gold, backend, prov)
    except (LeaseLost, Cancelled) as exc:
        if isinstance(exc, Cancelled):
            _finish(run_id, lease, RunStatus.CANCELLED, None, None, [], {}, {}, keep_checkpoint=True)
            return "cancelled"
        log.warning("run %s: lease lost; another execution owns it", run_id)
        return "lease lost"
    except Exception as exc:  # any failure: the run is failed, resumable from its checkpoint
        log.exception("run %s failed", run_id)
        message = f"{type(exc).__name__}: {exc}"
        Run.objects.filter(pk=run_id, lease=lease).update(
            status=RunStatus.FAILED, error=message[:4000] + "\n\n" + traceback.format_exc(limit=3)[-2000:],
            finished=timezone.now(), lease="")
        notify(run_id)
        if run.parent_id:
            settle_parent(run.parent_id)
        return "failed"
    finally:
        heartbeat.stop_event.set()


def _execute_icm(run, lease, heartbeat, examples, task, gold, backend, prov) -> str:
    config = ICMConfig.from_dict({**run.config, "seed": run.seed})
    lo, hi = run.batch_range or (0, len(make_batches(examples, config.batch_size)))
    recorder = Recorder(run, lease, heartbeat, gold, (hi - lo) * config.iterations, first_step=lo * config.iterations,
                        batch_steps=config.iterations)
    search = ICMSearch(examples, task, backend, config, on_event=recorder.on_event, checkpoint=run.checkpoint,
                       batch_range=(lo, hi))
    recorder.search = search
    result = search.run(should_stop=recorder.should_stop)
    if heartbeat.lost.is_set():
        raise LeaseLost()
    # A shard reports, and hands its parent, only its own batches (the others' labels are all None).
    mine = [u for b in range(lo, hi) for u in search.batches[b]]
    extra = {**recorder.compare(result.labels, result.scores),
             **recorder.u_fields(), "labeled": sum(result.labels[u] is not None for u in mine),
             "size": len(mine), "model_calls": result.stats.calls, "prompts": result.stats.prompts,
             "prompt_tokens": result.stats.prompt_tokens, "computed_tokens": result.stats.computed_tokens,
             "elapsed_s": round(result.wall_s, 2), "eta_s": 0 if result.complete else None,
             "accepted": result.accepted, "rejected": result.rejected, "flipped_batches": result.flipped_batches}
    kept = [examples[u] for u in mine]
    labels, scores = [result.labels[u] for u in mine], [result.scores[u] for u in mine]
    prov = _described(prov, backend)
    set_phase(run, lease, "writing")
    if result.complete:
        _finish(run.pk, lease, RunStatus.SUCCEEDED, labels, scores, kept, prov, extra, keep_checkpoint=False)
        return "succeeded"
    # Cancelled: keep what it had labeled (a partial label set) and the state to resume from.
    _finish(run.pk, lease, RunStatus.CANCELLED, labels, scores, kept, prov, extra, keep_checkpoint=True,
            checkpoint=search.checkpoint())
    return "cancelled"


def _execute_baseline(run, lease, heartbeat, examples, task, gold, backend, prov) -> str:
    cfg = dict(run.config)
    recorder = Recorder(run, lease, heartbeat, gold, len(examples))
    origin = backend.stats.copy()

    def on_progress(n: int) -> None:
        recorder.on_baseline_progress(n, len(examples), backend.stats.minus(origin))

    result = run_baseline(
        run.method, examples, task, backend, gold=gold if run.method == RunMethod.GOLD_ICL else None, seed=run.seed,
        readout=cfg.get("readout", "verdict"), context=cfg.get("context", "all"),
        calibrate=bool(cfg.get("calibrate", False)), shots=cfg.get("shots"), rounds=int(cfg.get("rounds", 3)),
        batch_size=int(cfg.get("batch_size", 256)), on_progress=on_progress,
    )
    set_phase(run, lease, "writing")
    extra = {**recorder.compare(result.labels, result.scores), "labeled": len(examples),
             "model_calls": result.stats.calls,
             "prompts": result.stats.prompts, "prompt_tokens": result.stats.prompt_tokens,
             "computed_tokens": result.stats.computed_tokens, "elapsed_s": round(result.wall_s, 2), "eta_s": 0}
    _finish(run.pk, lease, RunStatus.SUCCEEDED, result.labels, result.scores, examples, _described(prov, backend),
            extra, keep_checkpoint=False)
    return "succeeded"
