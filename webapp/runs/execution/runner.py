"""The run function: the same code in a Celery worker and in the embedded worker thread.

It claims the run (lease.py), loads its inputs and backend, runs ICM or a baseline while the recorder
writes progress and checkpoints (recorder.py), and writes the outcome (outcome.py). The search state goes to
the database every few seconds; a new execution resumes from it and ends with the labels an uninterrupted
run of the same seed would have given.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from django.conf import settings
from django.utils import timezone

from icm_engine.facade import (
    BaselineConfig,
    EngineExample,
    ICMConfig,
    LoadedData,
    Task,
    get_task,
    limit_examples,
    orientation_warnings,
    plan_job,
    run_baseline,
    run_icm_job,
)
from webapp.datasets.models import Dataset, Example, Label
from webapp.datasets.selectors import latest_gold

from ..backends import build_backend
from ..live import notify
from ..models import Run, RunMethod, RunStatus
from ..progress import RunProgress
from .lease import Cancelled, Heartbeat, LeaseLost, claim
from .outcome import Outcome, finish, settle_parent, write_consensus
from .recorder import Recorder, set_phase

log = logging.getLogger(__name__)


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


def _described(prov: dict[str, Any], backend: Any) -> dict[str, Any]:
    """The provenance with the backend as it describes itself after the work (a server backend learns
    only on its first call whether it gets exact label log-probabilities)."""
    return {**prov, "backend": backend.describe()}


def provenance_of(run: Run, task: Task, backend_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run.pk, "method": run.method, "seed": run.seed, "limit": run.limit, "config": run.config,
        "task": task.describe(), "backend": backend_info, "model": str(backend_info.get("model") or run.model),
    }


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
        info = backend.describe()
        prov = provenance_of(run, task, info)
        if run.method == RunMethod.ICM:
            return _execute_icm(run, lease, heartbeat, examples, task, gold, backend, prov)
        return _execute_baseline(run, lease, heartbeat, examples, task, gold, backend, prov)
    except (LeaseLost, Cancelled) as exc:
        if isinstance(exc, Cancelled):
            finish(lease, Outcome(run_id, RunStatus.CANCELLED, keep_checkpoint=True))
            return "cancelled"
        log.warning("run %s: lease lost; another execution owns it", run_id)
        return "lease lost"
    except Exception as exc:  # any failure: the run is failed, resumable from its checkpoint
        log.exception("run %s failed", run_id)
        Run.objects.filter(pk=run_id, lease=lease).update(
            status=RunStatus.FAILED, error=one_line(exc), error_detail=traceback.format_exc(limit=8)[-8000:],
            finished=timezone.now(), lease="")
        notify(run_id)
        if run.parent_id:
            settle_parent(run.parent_id)
        return "failed"
    finally:
        heartbeat.stop_event.set()


_PATH = re.compile(r"""(?<![\w.])(?:[A-Za-z]:\\|~?/)(?:[^\s'"/\\:]+[/\\])*([^\s'"/\\:]*)""")


def one_line(exc: BaseException) -> str:
    """A failure as members see it: its kind and the first line of its message, each path cut to its last
    part (a member learns what failed, not where the server keeps its files)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {_PATH.sub(lambda m: m.group(1) or '…', first)}".rstrip(": ")
    return text[:500]


def _execute_icm(run, lease, heartbeat, examples, task, gold, backend, prov) -> str:
    config = ICMConfig.from_dict({**run.config, "seed": run.seed})
    plan = plan_job(examples, config, run.batch_range)
    recorder = Recorder(run, lease, heartbeat, gold, plan.total_steps, first_step=plan.first_step,
                        batch_steps=config.iterations)
    job = run_icm_job(examples, task, backend, config, batch_range=(plan.first, plan.end), checkpoint=run.checkpoint,
                      on_event=recorder.on_event, on_checkpoint=recorder.save_checkpoint,
                      checkpoint_every_s=settings.ICM_CHECKPOINT_S, should_stop=recorder.should_stop)
    if heartbeat.lost.is_set():
        raise LeaseLost()
    result = job.result
    # A shard reports, and hands its parent, only its own batches (the others' labels are all None).
    final = RunProgress(
        **recorder.compare(result.labels, result.scores), **recorder.u_fields(), labeled=job.labeled,
        size=len(job.plan.positions), **result.stats.as_dict(), elapsed_s=round(result.wall_s, 2),
        eta_s=0 if result.complete else None, accepted=result.accepted, rejected=result.rejected,
        flipped_batches=result.flipped_batches, searched=job.searched, completed=result.completed,
        settled=result.settled, orientation=result.orientation, anchor=result.anchor,
        warnings=orientation_warnings(result.orientation))
    outcome = Outcome(run.pk, RunStatus.SUCCEEDED, final, [examples[u] for u in job.plan.positions], job.labels,
                      job.scores, _described(prov, backend))
    set_phase(run, lease, "writing")
    if result.complete:
        finish(lease, outcome)
        if not run.parent_id:
            write_consensus(run.pk)
        return "succeeded"
    # Cancelled: keep what it had labeled (a partial label set) and the state to resume from.
    outcome.status, outcome.keep_checkpoint, outcome.checkpoint = RunStatus.CANCELLED, True, job.checkpoint()
    finish(lease, outcome)
    return "cancelled"


def _execute_baseline(run, lease, heartbeat, examples, task, gold, backend, prov) -> str:
    recorder = Recorder(run, lease, heartbeat, gold, len(examples))
    origin = backend.stats.copy()

    def on_progress(n: int) -> None:
        recorder.on_baseline_progress(n, len(examples), backend.stats.minus(origin))

    result = run_baseline(run.method, examples, task, backend, BaselineConfig.from_dict(run.config),
                          gold=gold if run.method == RunMethod.GOLD_ICL else None, seed=run.seed,
                          on_progress=on_progress)
    set_phase(run, lease, "writing")
    final = RunProgress(**recorder.compare(result.labels, result.scores), labeled=result.labeled,
                        size=len(examples), **result.stats.as_dict(), elapsed_s=round(result.wall_s, 2), eta_s=0)
    finish(lease, Outcome(run.pk, RunStatus.SUCCEEDED, final, examples, result.labels, result.scores,
                          _described(prov, backend)))
    return "succeeded"
