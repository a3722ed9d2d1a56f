"""The consensus of an ICM experiment's seeds: written as a label set of its own once the last seed finishes.

An experiment is the runs that differ only in their seed (selectors.experiment_key). When none of its runs is
queued or running and at least two seeds succeeded, their labels (each as its orientation named them) are put to
a majority vote (icm_engine's consensus): each label's score is the share of the seeds that gave it, ties go to
the label-free pick (the seed with the highest final U), and the label set's configuration says which runs and
seeds voted and how far they agreed. It is an ICM label set like any other: reviewed, exported, compared.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from icm_engine.facade import consensus
from webapp.datasets.models import Example, Label, LabelSet, LabelSetKind, LabelSetSource
from webapp.datasets.selectors import next_version
from webapp.datasets.services import labels_changed

from .models import ACTIVE, Run, RunMethod, RunStatus
from .selectors import CONSENSUS as NAME
from .selectors import experiment_seeds


def record_consensus(run: Run) -> LabelSet | None:
    """The consensus label set of `run`'s experiment, written if this run was its last to finish and no
    consensus of the same runs exists yet; None where there is none to write."""
    if run.method != RunMethod.ICM or run.parent_id:
        return None
    seeds = experiment_seeds(run)
    if any(r.status in ACTIVE for r in seeds["all"]):
        return None
    done = [r for r in seeds["latest"] if r.status == RunStatus.SUCCEEDED and r.label_set_id]
    if len(done) < 2:
        return None
    ids = sorted(r.pk for r in done)
    with transaction.atomic():
        existing = [s for s in LabelSet.objects.select_for_update().filter(dataset_id=run.dataset_id, name=NAME)
                    if (s.configuration.get("consensus") or {}).get("runs") == ids]
        if existing:
            return existing[0]
        return _write(run, done, ids)


def _write(run: Run, done: list[Run], ids: list[int]) -> LabelSet:
    examples = list(Example.objects.filter(dataset_id=run.dataset_id).order_by("position").values_list("pk", flat=True))
    by_set: dict[int, dict[int, bool]] = {r.label_set_id: {} for r in done}
    for set_id, example_id, value in Label.objects.filter(label_set_id__in=list(by_set)).values_list(
            "label_set_id", "example_id", "value"):
        by_set[set_id][example_id] = value
    # Only the examples some seed labeled (a run with a limit labels the first N).
    kept = [e for e in examples if any(e in labels for labels in by_set.values())]
    votes = [[by_set[r.label_set_id].get(e) for e in kept] for r in done]
    pick = max(range(len(done)), key=lambda k: ((done[k].progress or {}).get("final_u") or float("-inf"),
                                                -done[k].seed))
    result = consensus(votes, pick=pick, names=[r.seed for r in done])
    first = done[0].label_set
    provenance: dict[str, Any] = {
        "method": "icm-consensus",
        "consensus": {"runs": ids, **result.as_dict(), "seeds": [r.seed for r in done], "pick": done[pick].seed},
        "config": run.config, "limit": run.limit, "model": first.model,
        "backend": (first.configuration or {}).get("backend"), "task": (first.configuration or {}).get("task"),
    }
    label_set = LabelSet.objects.create(
        dataset_id=run.dataset_id, kind=LabelSetKind.ICM, name=NAME, version=next_version(run.dataset_id, NAME),
        source=LabelSetSource.RUN, source_name=f"consensus of runs {', '.join(map(str, ids))}",
        created_by_id=run.created_by_id, model=first.model, configuration=provenance,
        partial=any(y is None for y in result.labels) or len(kept) < len(examples))
    Label.objects.bulk_create(
        [Label(label_set=label_set, example_id=e, value=bool(y), score=c)
         for e, y, c in zip(kept, result.labels, result.confidence, strict=True) if y is not None], batch_size=2000)
    labels_changed(label_set.pk)
    return label_set
