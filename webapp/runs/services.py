"""Writes for runs: create (validated, queued after commit), cancel, resume, and recovery of runs whose
worker stopped."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Length
from django.utils import timezone

from icm_engine.baselines import METHODS as BASELINE_METHODS
from icm_engine.scoring import CONTEXTS, READOUTS
from icm_engine.search import ICMConfig, make_batches, sized_to
from icm_engine.tasks import get_task
from webapp.datasets import permissions
from webapp.datasets.models import Dataset, Example, Label
from webapp.datasets.selectors import latest_gold, role_of

from .backends import check_backend
from .models import ACTIVE, Run, RunMethod, RunStatus

log = logging.getLogger(__name__)

BASELINE_KEYS = {"readout", "context", "calibrate", "shots", "rounds", "batch_size"}
ICM_KEYS = {f for f in ICMConfig().as_dict() if f != "seed"}


def _check_fields(dataset: Dataset, method: str, config: dict[str, Any]) -> None:
    """The readout's and the anchor's fields must be on every example: a run that would fail at its first
    prompt is refused, naming the first example without the field."""
    task = get_task(dataset.task, template=dataset.template, consistency=dataset.consistency)
    anchor = method == RunMethod.LIKELIHOOD or config.get("anchor", "none") != "none"
    readout = config.get("readout", "verdict")
    for_readout = task.required_fields(readout)
    needed = [f for f in task.required_fields(readout, anchor) if f != task.key_field]
    examples = Example.objects.filter(dataset=dataset)
    for name in needed:
        # The key as a parameter, never as lookup syntax: a template field may be named like "a__contains".
        # Empty by its length: SQLite's JSON comparison with "" fails ("malformed JSON").
        lacking = examples.annotate(value=KeyTextTransform(name, "fields")).annotate(size=Length("value")).filter(
            Q(value__isnull=True) | Q(size=0)).order_by("position")
        first = lacking.values_list("position", "external_id").first()
        if first is not None:
            what = f"the {readout} readout" if name in for_readout else "the likelihood anchor"
            raise ValidationError({"hyperparameters": f"{what} needs the field {name!r}, which example "
                                                      f"{first[1]!r} (row {first[0] + 1}) does not have"})


def _validate_config(method: str, params: dict[str, Any], n_examples: int) -> dict[str, Any]:
    if method == RunMethod.ICM:
        unknown = set(params) - ICM_KEYS
        if unknown:
            raise ValidationError({"hyperparameters": f"unknown hyperparameters: {', '.join(sorted(unknown))}"})
        # Left out (or null): sized to the examples the run labels.
        params = {**params, **{k: v for k, v in sized_to(n_examples).items() if params.get(k) is None}}
        try:
            config = ICMConfig(**params).validate()
        except (TypeError, ValueError) as exc:
            raise ValidationError({"hyperparameters": str(exc)}) from None
        data = config.as_dict()
        data.pop("seed")
        return data
    unknown = set(params) - BASELINE_KEYS
    if unknown:
        raise ValidationError({"hyperparameters": f"unknown parameters for a baseline: {', '.join(sorted(unknown))}"})
    out = {"readout": params.get("readout", "verdict"), "context": params.get("context", "all"),
           "calibrate": bool(params.get("calibrate", False)), "shots": params.get("shots"),
           "rounds": params.get("rounds", 3),
           "batch_size": 256 if params.get("batch_size") is None else params["batch_size"]}
    problems = []
    if out["readout"] not in READOUTS:
        problems.append(f"readout must be one of {', '.join(READOUTS)}")
    if out["context"] not in CONTEXTS:
        problems.append(f"context must be one of {', '.join(CONTEXTS)}")
    for key, low in (("shots", 1), ("rounds", 0), ("batch_size", 2)):
        value = out[key]
        if value is None and key == "shots":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{key} must be an integer >= {low}")
    if problems:
        raise ValidationError({"hyperparameters": "; ".join(problems)})
    return out


def has_full_gold(dataset: Dataset) -> bool:
    gold = latest_gold(dataset)
    n = Example.objects.filter(dataset=dataset).count()
    return gold is not None and Label.objects.filter(label_set=gold).count() >= n


def create_run(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    method: str = RunMethod.ICM,
    backend: str = "transformers",
    model: str = "",
    seed: int = 0,
    limit: int | None = None,
    hyperparameters: dict[str, Any] | None = None,
    backend_options: dict[str, Any] | None = None,
    shards: int | None = None,
) -> Run:
    """Validate everything, store the run as queued, and dispatch it once the transaction commits.

    `shards` > 1 (ICM only) splits the run's batches into that many contiguous ranges, each an ordinary
    run that any worker claims; the parent run collects their labels into one label set."""
    permissions.require(role_of(user, dataset), permissions.WRITE_LABELS, "Starting a run")
    if method not in RunMethod.values:
        raise ValidationError({"method": f"method must be one of {', '.join(RunMethod.values)}"})
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValidationError({"seed": "seed must be an integer"})
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValidationError({"limit": "limit must be a positive integer"})
    n_examples = Example.objects.filter(dataset=dataset).count()
    config = _validate_config(method, dict(hyperparameters or {}), min(n_examples, limit or n_examples))
    _check_fields(dataset, method, config)
    backend_options = dict(backend_options or {})
    check_backend(backend, model, backend_options)
    if not Example.objects.filter(dataset=dataset).exists():
        raise ValidationError({"dataset": "the dataset has no examples"})
    if method == RunMethod.GOLD_ICL and not has_full_gold(dataset):
        # The golden-label ceiling reads gold by design (it is a baseline, never ICM): every example needs one.
        raise ValidationError({"method": "gold-icl needs a gold label on every example"})
    assert method in BASELINE_METHODS or method == RunMethod.ICM
    if shards is not None and (not isinstance(shards, int) or isinstance(shards, bool) or shards < 1):
        raise ValidationError({"shards": "shards must be a positive integer"})
    if shards and shards > 1:
        if method != RunMethod.ICM:
            raise ValidationError({"shards": "only ICM runs are split into shards (baselines are one pass)"})
        return _create_sharded(user=user, dataset=dataset, backend=backend, model=model, seed=seed, limit=limit,
                               config=config, backend_options=backend_options, shards=shards)
    with transaction.atomic():
        run = Run.objects.create(
            dataset=dataset, created_by=user, method=method, task=dataset.task, backend=backend, model=model,
            backend_options=backend_options, seed=seed, limit=limit, config=config, status=RunStatus.QUEUED,
            dispatched=timezone.now(),
        )
        transaction.on_commit(lambda: dispatch(run.pk))
    return run


# Methods whose labels depend on the seed: they get one run per seed; the others run once.
SEEDED = (RunMethod.ICM, RunMethod.RANDOM_ICL, RunMethod.BOOTSTRAP, RunMethod.GOLD_ICL)
MAX_SEEDS = 20


def baseline_methods(dataset: Dataset, anchor: str = "none") -> list[str]:
    """The baselines queued beside an ICM run: zero-shot, random-label ICL, the anchor alone where ICM uses
    the likelihood anchor, and the golden-label ceiling where every example has gold."""
    out = [RunMethod.ZERO_SHOT, RunMethod.RANDOM_ICL]
    if anchor == "likelihood":
        out.append(RunMethod.LIKELIHOOD)
    if has_full_gold(dataset):
        out.append(RunMethod.GOLD_ICL)
    return out


def check_seeds(seeds: Any) -> list[int]:
    if (not isinstance(seeds, list | tuple) or not seeds
            or any(not isinstance(x, int) or isinstance(x, bool) for x in seeds)):
        raise ValidationError({"seeds": "seeds must be a non-empty list of integers"})
    if any(not -(2**31) <= x < 2**31 for x in seeds):
        raise ValidationError({"seeds": "each seed must fit in 32 bits"})
    if len(set(seeds)) != len(seeds):
        raise ValidationError({"seeds": "each seed may appear once"})
    if len(seeds) > MAX_SEEDS:
        raise ValidationError({"seeds": f"at most {MAX_SEEDS} seeds"})
    return list(seeds)


def start_runs(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    method: str = RunMethod.ICM,
    seeds: list[int] | tuple[int, ...] = (0,),
    baselines: bool = False,
    hyperparameters: dict[str, Any] | None = None,
    baseline_hyperparameters: dict[str, Any] | None = None,
    shards: int | None = None,
    **common: Any,
) -> list[Run]:
    """Every front door's way to start runs: one run of `method` per seed (a method whose labels do not depend
    on the seed runs once, with the first), and with `baselines` (ICM only) the baselines beside it, each
    seeded method once per seed. All or nothing: one invalid run queues none. Returns the runs of `method`."""
    seeds = check_seeds(list(seeds))
    hyperparameters = dict(hyperparameters or {})
    if baseline_hyperparameters is None:
        baseline_hyperparameters = {k: v for k, v in hyperparameters.items() if k in BASELINE_KEYS}
    with transaction.atomic():
        runs = [create_run(user=user, dataset=dataset, method=method, seed=seed, hyperparameters=hyperparameters,
                           shards=shards, **common) for seed in (seeds if method in SEEDED else seeds[:1])]
        if baselines and method == RunMethod.ICM:
            for other in baseline_methods(dataset, hyperparameters.get("anchor") or "none"):
                for seed in seeds if other in SEEDED else seeds[:1]:
                    create_run(user=user, dataset=dataset, method=other, seed=seed,
                               hyperparameters=baseline_hyperparameters, **common)
    return runs


def shard_ranges(n_batches: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal ranges of batch indices, at most one shard per batch."""
    shards = min(shards, n_batches)
    bounds = [round(i * n_batches / shards) for i in range(shards + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(shards)]


def _create_sharded(*, user, dataset, backend, model, seed, limit, config, backend_options, shards) -> Run:
    from .execution import dataset_examples

    examples = dataset_examples(dataset, limit)
    ranges = shard_ranges(len(make_batches(examples, config["batch_size"])), shards)
    common = {"dataset": dataset, "created_by": user, "method": RunMethod.ICM, "task": dataset.task,
              "backend": backend, "model": model, "backend_options": backend_options, "seed": seed, "limit": limit,
              "config": config}
    now = timezone.now()
    with transaction.atomic():
        # The parent runs nothing: it is "running" while any shard is active and settles when the last ends.
        parent = Run.objects.create(**common, status=RunStatus.RUNNING, shard_count=len(ranges), started=now,
                                    progress={"phase": "running", "size": len(examples), "labeled": 0})
        children = Run.objects.bulk_create([
            Run(**common, parent=parent, batch_range=[lo, hi], status=RunStatus.QUEUED, dispatched=now)
            for lo, hi in ranges])
        for child in children:
            transaction.on_commit(lambda pk=child.pk: dispatch(pk))
    return parent


def dispatch(run_id: int) -> None:
    """Hand a run to whatever executes runs here. Only ever called after the row is committed."""
    if settings.ICM_RUN_DISPATCH == "celery":
        from .tasks import execute

        execute.delay(run_id)
    elif settings.ICM_RUN_DISPATCH == "embedded":
        from . import embedded

        embedded.submit(run_id)
    # "none": runs wait for an explicit execute_run (tests of the queueing itself).


def cancel_run(*, user: AbstractBaseUser, run: Run) -> Run:
    permissions.require(role_of(user, run.dataset), permissions.WRITE_LABELS, "Cancelling a run")
    if run.status not in ACTIVE:
        raise ValidationError({"status": f"the run is {run.status}; only queued or running runs can be cancelled"})
    if run.is_sharded:
        for child in run.shards.filter(status__in=ACTIVE):
            _cancel_one(child)
        run.refresh_from_db()
        return run
    return _cancel_one(run)


def _cancel_one(run: Run) -> Run:
    now = timezone.now()
    # A queued run stops here; a running one is stopped by its worker within about a second.
    if not Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, cancel_requested=True, finished=now):
        Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    from .execution import notify, settle_parent

    notify(run.pk)
    if run.parent_id:
        settle_parent(run.parent_id)
    run.refresh_from_db()
    return run


def resume_run(*, user: AbstractBaseUser, run: Run) -> Run:
    """Queue a failed or cancelled run again; it continues from its last checkpoint. A sharded run
    resumes every shard that did not succeed."""
    permissions.require(role_of(user, run.dataset), permissions.WRITE_LABELS, "Resuming a run")
    if run.is_sharded:
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise ValidationError({"status": f"the run is {run.status}; only failed or cancelled runs resume"})
        for child in run.shards.filter(status__in=[RunStatus.FAILED, RunStatus.CANCELLED]):
            _resume_one(child)
        run.refresh_from_db()
        return run
    return _resume_one(run)


def _resume_one(run: Run) -> Run:
    with transaction.atomic():
        updated = Run.objects.filter(pk=run.pk, status__in=[RunStatus.FAILED, RunStatus.CANCELLED]).update(
            status=RunStatus.QUEUED, cancel_requested=False, error="", finished=None, lease="",
            dispatched=timezone.now())
        if not updated:
            raise ValidationError({"status": f"the run is {run.status}; only failed or cancelled runs resume"})
        transaction.on_commit(lambda: dispatch(run.pk))
    if run.parent_id:
        from .execution import settle_parent

        settle_parent(run.parent_id)
    run.refresh_from_db()
    return run


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
