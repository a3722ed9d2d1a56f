"""Writes for runs: create (validated, queued after commit), cancel, resume, and recovery of runs whose
worker stopped."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from icm_engine.facade import BASELINE_METHODS, BASELINE_SETTINGS, get_task, make_batches, settings_for
from webapp.datasets import permissions
from webapp.datasets.models import Dataset, Example
from webapp.datasets.selectors import role_of

from .backends import check_backend
from .dispatch import dispatch
from .models import ACTIVE, Run, RunMethod, RunStatus
from .progress import SHARDED
from .selectors import first_lacking, has_full_gold, planned_runs

log = logging.getLogger(__name__)



def _check_fields(dataset: Dataset, method: str, config: dict[str, Any]) -> None:
    """The readout's and the anchor's fields must be on every example: a run that would fail at its first
    prompt is refused, naming the first example without the field."""
    task = get_task(dataset.task, template=dataset.template, consistency=dataset.consistency)
    # The orientation and an "agreeing" anchor do without the likelihood where its fields are missing; a run
    # asking for the likelihood itself needs them.
    anchor = method == RunMethod.LIKELIHOOD or config.get("anchor") == "likelihood" or config.get("orient") == \
        "likelihood"
    readout = config.get("readout", "verdict")
    for_readout = task.required_fields(readout)
    needed = [f for f in task.required_fields(readout, anchor) if f != task.key_field]
    missing = first_lacking(dataset, needed)
    if missing is not None:
        name, position, external_id = missing
        what = f"the {readout} readout" if name in for_readout else "the likelihood anchor"
        raise ValidationError({"config": f"{what} needs the field {name!r}, which example "
                                         f"{external_id!r} (row {position + 1}) does not have"})


def run_config(method: str, params: dict[str, Any], n_examples: int, task: dict[str, Any]) -> dict[str, Any]:
    """A run's whole configuration from the settings given: what is left out taken from the preset's choice and
    sized to the examples (the engine's `settings_for`), everything checked (ValidationError says which
    setting is wrong)."""
    kind = "icm" if method == RunMethod.ICM else "baseline"
    try:
        config = settings_for(task, n_examples, params, method=kind)[0].as_dict()
    except ValueError as exc:
        raise ValidationError({"config": str(exc)}) from None
    config.pop("seed", None)  # a run's seed is its own field
    return config


def _check_bounds(config: dict[str, Any], n_examples: int) -> None:
    """The operator's caps on one run's work (settings.ICM_MAX_*): a request never holds a worker for ever."""
    if (config.get("iterations") or 0) > settings.ICM_MAX_ITERATIONS:
        raise ValidationError({"config": f"iterations: at most {settings.ICM_MAX_ITERATIONS} per batch on this "
                                         "server (ICM_MAX_ITERATIONS)"})
    if n_examples > settings.ICM_MAX_RUN_EXAMPLES:
        raise ValidationError({"limit": f"a run labels at most {settings.ICM_MAX_RUN_EXAMPLES} examples on this "
                                        "server (ICM_MAX_RUN_EXAMPLES): give a limit"})


def _check_active(user: AbstractBaseUser) -> None:
    """At most ICM_MAX_ACTIVE_RUNS queued or running runs per user (shards count with their parent). The user's
    row is locked so that concurrent starts count each other's runs."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    active = Run.objects.filter(created_by=user, status__in=ACTIVE, parent__isnull=True).count()
    if active >= settings.ICM_MAX_ACTIVE_RUNS:
        raise ValidationError({"runs": f"you have {active} runs queued or running, the most this server takes "
                                       f"(ICM_MAX_ACTIVE_RUNS = {settings.ICM_MAX_ACTIVE_RUNS}); wait for them "
                                       "or cancel some"})


def create_run(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    method: str = RunMethod.ICM,
    backend: str = "transformers",
    model: str = "",
    seed: int = 0,
    limit: int | None = None,
    config: dict[str, Any] | None = None,
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
    config = run_config(method, dict(config or {}), min(n_examples, limit or n_examples), dataset.task_config)
    _check_bounds(config, min(n_examples, limit or n_examples))
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
        _check_active(user)
        run = Run.objects.create(
            dataset=dataset, created_by=user, method=method, task=dataset.task, backend=backend, model=model,
            backend_options=backend_options, seed=seed, limit=limit, config=config, status=RunStatus.QUEUED,
            dispatched=timezone.now(),
        )
        transaction.on_commit(lambda: dispatch(run.pk))
    return run


def check_seeds(seeds: Any) -> list[int]:
    if (not isinstance(seeds, list | tuple) or not seeds
            or any(not isinstance(x, int) or isinstance(x, bool) for x in seeds)):
        raise ValidationError({"seeds": "seeds must be a non-empty list of integers"})
    if any(not -(2**31) <= x < 2**31 for x in seeds):
        raise ValidationError({"seeds": "each seed must fit in 32 bits"})
    if len(set(seeds)) != len(seeds):
        raise ValidationError({"seeds": "each seed may appear once"})
    if len(seeds) > settings.ICM_MAX_SEEDS:
        raise ValidationError({"seeds": f"at most {settings.ICM_MAX_SEEDS} seeds (ICM_MAX_SEEDS)"})
    return list(seeds)


def start_runs(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    method: str = RunMethod.ICM,
    seeds: list[int] | tuple[int, ...] = (0,),
    baselines: bool | list[str] = False,
    config: dict[str, Any] | None = None,
    baseline_config: dict[str, Any] | None = None,
    shards: int | None = None,
    **common: Any,
) -> list[Run]:
    """Every front door's way to start runs: one run of `method` per seed (a method whose labels do not depend
    on the seed runs once, with the first: selectors.uses_seed), and with `baselines` (ICM only) the baselines
    beside it, each seeded method once per seed. All or nothing: one invalid run queues none. Returns the runs
    of `method`."""
    seeds = check_seeds(list(seeds))
    config = dict(config or {})
    if baseline_config is None:
        baseline_config = {k: v for k, v in config.items() if k in BASELINE_SETTINGS}
    runs = []
    with transaction.atomic():
        for planned, seed in planned_runs(dataset, method, seeds, baselines, config.get("anchor") or "none",
                                          config=config, baseline_config=baseline_config):
            own = planned == method
            run = create_run(user=user, dataset=dataset, method=planned, seed=seed,
                             config=config if own else baseline_config,
                             shards=shards if own else None, **common)
            if own:
                runs.append(run)
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
        _check_active(user)
        # The parent runs nothing: it is "running" while any shard is active and settles when the last ends.
        parent = Run.objects.create(**common, status=RunStatus.RUNNING, shard_count=len(ranges), started=now,
                                    progress={"phase": SHARDED, "size": len(examples), "labeled": 0})
        children = Run.objects.bulk_create([
            Run(**common, parent=parent, batch_range=[lo, hi], status=RunStatus.QUEUED, dispatched=now)
            for lo, hi in ranges])
        for child in children:
            transaction.on_commit(lambda pk=child.pk: dispatch(pk))
    return parent


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
    from .execution import settle_parent
    from .live import notify

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
