"""The outcome of an execution: its labels written as a label set and its status, in one transaction; a
sharded run's status and progress brought up to date with its shards."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from icm_engine.facade import EngineExample
from webapp.datasets.models import Example, Label, LabelSet, LabelSetKind, LabelSetSource
from webapp.datasets.selectors import next_version
from webapp.datasets.services import labels_changed

from ..consensus import record_consensus
from ..live import notify
from ..models import ACTIVE, Run, RunMethod, RunStatus
from ..progress import ENDED, SHARDED, RunProgress, stored
from ..selectors import shard_progress
from .lease import LeaseLost

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How an execution ended: its status, the final progress record (what it knows; the rest stays as the
    recorder last wrote it), the labels of its examples and where they came from, and its checkpoint."""

    run_id: int
    status: str
    progress: RunProgress = field(default_factory=RunProgress)
    examples: list[EngineExample] = field(default_factory=list)
    labels: list[bool | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    keep_checkpoint: bool = False
    checkpoint: dict[str, Any] | None = None  # the state to keep (with keep_checkpoint), if newer than stored

    @property
    def labeled(self) -> list[tuple[EngineExample, bool, float | None]]:
        return [(ex, y, s) for ex, y, s in zip(self.examples, self.labels, self.scores, strict=False) if y is not None]


def finish(lease: str, outcome: Outcome) -> None:
    """Write the outcome in one transaction, only while this execution still holds the lease."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=outcome.run_id)
        if run.lease != lease:
            raise LeaseLost()
        labeled = outcome.labeled
        if run.parent_id:
            label_set = _shard_labels(run, [str(ex.id) for ex in outcome.examples], labeled, outcome.provenance)
        else:
            partial = outcome.status != RunStatus.SUCCEEDED or len(labeled) < len(outcome.examples)
            label_set = _new_label_set(run, labeled, outcome.provenance, partial=partial) if labeled else None
        run.status = outcome.status
        run.finished = timezone.now()
        if not run.parent_id:  # a shard's labels live in its parent's label set
            run.label_set = label_set or run.label_set
        # The time left is the final record's even when unknown: a stopped run has none.
        run.progress = stored(run.progress, **{**outcome.progress.known(), "eta_s": outcome.progress.eta_s,
                                               "phase": ENDED})
        if outcome.checkpoint is not None:
            run.checkpoint, run.checkpointed = outcome.checkpoint, timezone.now()
        if not outcome.keep_checkpoint:
            run.checkpoint = None
        run.lease = ""
        run.save()
    notify(outcome.run_id)
    if run.parent_id:
        settle_parent(run.parent_id)


def _new_label_set(run: Run, labeled: list, provenance: dict[str, Any], partial: bool) -> LabelSet:
    name = f"{run.method} run {run.pk}"
    label_set = LabelSet.objects.create(
        dataset_id=run.dataset_id,
        kind=LabelSetKind.ICM if run.method == RunMethod.ICM else LabelSetKind.BASELINE,
        name=name, version=next_version(run.dataset_id, name), source=LabelSetSource.RUN,
        created_by_id=run.created_by_id, model=provenance.get("model", "")[:255],
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
        progress["phase"] = SHARDED if status == RunStatus.RUNNING else ENDED
        parent.status, parent.error, parent.progress, parent.finished = status, error, progress, finished
        parent.save(update_fields=["status", "error", "progress", "finished"])
        if parent.label_set_id:
            whole = status == RunStatus.SUCCEEDED and progress["labeled"] >= progress["size"]
            LabelSet.objects.filter(pk=parent.label_set_id).update(partial=not whole)
    notify(parent_id)
    if status == RunStatus.SUCCEEDED:
        write_consensus(parent_id)


def write_consensus(run_id: int) -> None:
    """The consensus of the run's experiment once its last seed has finished (consensus.py). The run's own
    outcome is written already: a failure here is logged, never turned into a failed run."""
    try:
        record_consensus(Run.objects.select_related("dataset").get(pk=run_id))
    except Exception:
        log.exception("run %s: the consensus of its seeds could not be written", run_id)
