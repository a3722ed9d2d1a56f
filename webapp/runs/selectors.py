"""Reads for runs, scoped to the user's datasets (others get 404)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Length
from django.http import Http404

from icm_engine.facade import get_task
from webapp.api.serializers.runs import RunSerializer
from webapp.datasets.models import Dataset, Example, Label, LabelSet, Role
from webapp.datasets.selectors import User, blind_dataset_ids, gold_comparisons, latest_gold, role_of

from .models import ACTIVE, Run, RunMethod, RunStatus
from .progress import RunProgress


def runs_for_user(user: User) -> QuerySet[Run]:
    if not user.is_authenticated:
        return Run.objects.none()
    # Annotators label blind: a run's progress and labels are model labels, so they see no runs.
    return (
        Run.objects.filter(dataset__memberships__user=user)
        .exclude(dataset_id__in=blind_dataset_ids(user))
        .select_related("dataset", "created_by", "label_set")
    )


def get_run(user: User, pk: Any) -> Run:
    try:
        return runs_for_user(user).get(pk=pk)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise Http404("No such run.") from None


def sees_failures(user: User, run: Run) -> bool:
    """Whether `user` reads a failed run's traceback (error_detail): the dataset's owners."""
    return role_of(user, run.dataset) == Role.OWNER


def has_full_gold(dataset: Dataset) -> bool:
    gold = latest_gold(dataset)
    n = Example.objects.filter(dataset=dataset).count()
    return gold is not None and Label.objects.filter(label_set=gold).count() >= n


# Methods whose labels depend on the seed: they get one run per seed; the others run once.
# Methods whose labels depend on the seed whatever their settings; golden-label ICL and bootstrap draw from
# their seed only where `shots` samples the demonstrations (otherwise every seed gives the same labels).
SEEDED = (RunMethod.ICM, RunMethod.RANDOM_ICL)
SAMPLED = (RunMethod.BOOTSTRAP, RunMethod.GOLD_ICL)


def uses_seed(method: str, config: dict[str, Any] | None) -> bool:
    return method in SEEDED or (method in SAMPLED and (config or {}).get("shots") is not None)


def first_lacking(dataset: Dataset, names: list[str]) -> tuple[str, int, str] | None:
    """The first of these fields some example lacks (or has empty), with that example's position and id."""
    examples = Example.objects.filter(dataset=dataset)
    for name in names:
        # The key as a parameter, never as lookup syntax: a template field may be named like "a__contains".
        # Empty by its length: SQLite's JSON comparison with "" fails ("malformed JSON").
        lacking = examples.annotate(value=KeyTextTransform(name, "fields")).annotate(size=Length("value")).filter(
            Q(value__isnull=True) | Q(size=0)).order_by("position")
        first = lacking.values_list("position", "external_id").first()
        if first is not None:
            return name, first[0], first[1]
    return None


# The baselines a start may queue beside ICM, in order; DEFAULT_BASELINES without a choice (bootstrap runs
# the model several times over: chosen, not by default).
BASELINES = (RunMethod.ZERO_SHOT, RunMethod.LIKELIHOOD, RunMethod.RANDOM_ICL, RunMethod.BOOTSTRAP, RunMethod.GOLD_ICL)
DEFAULT_BASELINES = (RunMethod.ZERO_SHOT, RunMethod.LIKELIHOOD, RunMethod.RANDOM_ICL, RunMethod.GOLD_ICL)


def available_baselines(dataset: Dataset) -> list[str]:
    """The baselines this dataset can run: the likelihood where the examples have its fields, golden-label
    ICL where every example has gold."""
    task = get_task(dataset.task, template=dataset.template, consistency=dataset.consistency)
    out = []
    for m in BASELINES:
        if m == RunMethod.LIKELIHOOD and first_lacking(dataset, list(task.likelihood_fields())) is not None:
            continue
        if m == RunMethod.GOLD_ICL and not has_full_gold(dataset):
            continue
        out.append(m)
    return out


def baseline_methods(dataset: Dataset, anchor: str = "none", chosen: Sequence[str] | None = None) -> list[str]:
    """The baselines queued beside an ICM run: those `chosen` (each must be available), else the default ones
    this dataset can run (zero-shot, the likelihood, the label-free baseline ICM must beat, random-label
    ICL, and the golden-label ceiling)."""
    available = available_baselines(dataset)
    if chosen is None:
        return [m for m in available if m in DEFAULT_BASELINES]
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise ValidationError({"baselines": f"{', '.join(map(str, unknown))}: not a baseline this dataset can run; "
                                            f"choose among {', '.join(available)}"})
    return [m for m in available if m in chosen]


def planned_runs(dataset: Dataset, method: str, seeds: list[int], baselines: bool | Sequence[str],
                 anchor: str = "none", *,
                 config: dict[str, Any] | None = None, baseline_config: dict[str, Any] | None = None,
                 ) -> list[tuple[str, int]]:
    """The (method, seed) of each run a start queues, in order: `method` once per seed (once if its labels do
    not depend on the seed: uses_seed), then with `baselines` (ICM only) each baseline likewise."""
    chosen = None if baselines is True else list(baselines or [])
    methods = [method] + (baseline_methods(dataset, anchor, chosen) if baselines and method == RunMethod.ICM else [])
    return [(m, seed) for m in methods
            for seed in (seeds if uses_seed(m, config if m == method else baseline_config) else seeds[:1])]


def runs_of(dataset: Dataset) -> QuerySet[Run]:
    # The checkpoint can be megabytes: lists never load it. Shards are listed on their parent's page.
    return (Run.objects.filter(dataset=dataset, parent__isnull=True).select_related("created_by", "label_set")
            .defer("checkpoint", "history"))


SUMMED = ("labeled", "size", "model_calls", "prompts", "prompt_tokens", "computed_tokens", "accepted", "rejected",
          "gold_n", "step", "total_steps", "searched", "completed", "settled")


def shard_progress(children: list[dict[str, Any]]) -> dict[str, Any]:
    """A sharded run's progress: its shards' counts summed; gold agreement pooled over their disjoint labels."""
    out: dict[str, Any] = {k: sum(int((c.get("progress") or {}).get(k) or 0) for c in children) for k in SUMMED}
    hits = sum(((c.get("progress") or {}).get("gold_agreement") or 0) * int((c.get("progress") or {}).get("gold_n")
                                                                               or 0) for c in children)
    out["gold_agreement"] = hits / out["gold_n"] if out["gold_n"] else None
    elapsed = [(c.get("progress") or {}).get("elapsed_s") or 0 for c in children]
    out["elapsed_s"] = max(elapsed, default=0)
    etas = [(c.get("progress") or {}).get("eta_s") for c in children if c["status"] in ACTIVE]
    out["eta_s"] = max((e for e in etas if e is not None), default=None) if etas else 0
    out["anchor"] = next((c["progress"]["anchor"] for c in children if (c.get("progress") or {}).get("anchor")), None)
    # Each shard names its own batches' classes: the parent lists them all, and warns if any was undecided.
    out["orientation"] = [o for c in children for o in (c.get("progress") or {}).get("orientation") or []]
    out["flipped_batches"] = sorted(b for c in children for b in (c.get("progress") or {}).get("flipped_batches") or [])
    out["warnings"] = sorted({w for c in children for w in (c.get("progress") or {}).get("warnings") or []})
    return out


def shards_of(run: Run) -> list[dict[str, Any]]:
    return list(run.shards.order_by("pk").values("pk", "status", "batch_range", "progress", "error", "worker",
                                                  "attempts"))


def snapshot(run: Run, *, detail: bool = False, gold: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the live page and the API show about a run, from its database row (a sharded run's
    progress is its shards', summed as they go). `gold`: its label set's figures against gold where the
    caller has them already (snapshots)."""
    progress = RunProgress.from_dict(run.progress).as_dict()
    shards: list[dict[str, Any]] = []
    if run.is_sharded:
        children = shards_of(run)
        progress.update(shard_progress(children))
        # A stored progress record names every field, None where not known yet: a shard not started shows 0.
        shards = [{"id": c["pk"], "status": c["status"], "batch_range": c["batch_range"], "worker": c["worker"],
                   "attempts": c["attempts"], **{k: int((c["progress"] or {}).get(k) or 0)
                                                for k in ("labeled", "step", "total_steps")}} for c in children]
    if run.label_set_id and run.status not in ACTIVE:
        progress.update(gold if gold is not None else label_set_gold([run])[run.pk])
    shown = _Shown(run, progress=progress, history=run.history or [], shards=shards,
                   # The failure's traceback: for the dataset's owners only (detail), never to other members.
                   error_detail=run.error_detail if detail else "")
    return dict(RunSerializer(shown).data)


class _Shown:
    """A run with what a snapshot computes for it (RunSerializer reads these as shown_*)."""

    def __init__(self, run: Run, **shown: Any) -> None:
        self.run = run
        self.shown = shown

    def __getattr__(self, name: str) -> Any:
        if name.startswith("shown_"):
            return self.shown[name.removeprefix("shown_")]
        return getattr(self.run, name)


def run_limits(label_set_ids: list[int]) -> dict[int, int | None]:
    """The limit of the run that made each of these label sets (None: the whole dataset); sets no run made are
    left out."""
    return dict(Run.objects.filter(label_set_id__in=label_set_ids).values_list("label_set_id", "limit"))


def snapshots(runs: list[Run]) -> list[dict[str, Any]]:
    """`snapshot` of each run (a page of the API's list), the finished ones' label sets compared with gold in
    two queries a dataset rather than for each run."""
    gold = label_set_gold([r for r in runs if r.label_set_id and r.status not in ACTIVE])
    return [snapshot(r, gold=gold.get(r.pk)) for r in runs]


def label_set_gold(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """Finished runs' accuracies, by run id: each label set against its dataset's latest gold, by the one
    function the label set's page and every table use (gold_comparisons), so the run page, its API and the
    label set agree; the live comparison while a run went was against the gold of its start, over the labels
    of that moment."""
    out: dict[int, dict[str, Any]] = {}
    by_dataset: dict[int, list[Run]] = {}
    for r in runs:
        by_dataset.setdefault(r.dataset_id, []).append(r)
    for mine in by_dataset.values():
        gold = latest_gold(mine[0].dataset)
        compared = gold_comparisons([r.label_set for r in mine], gold)
        for r in mine:
            c = compared.get(r.label_set_id)
            out[r.pk] = {"gold": c, "gold_agreement": c["accuracy"] if c else None, "gold_n": c["n"] if c else 0,
                         "gold_version": {"id": gold.pk, "name": gold.name, "version": gold.version} if c else None}
    return out


def experiment_key(run: Run) -> str:
    """What makes runs seeds of one experiment: everything but the seed."""
    return json.dumps([run.method, run.backend, run.model, run.backend_options, run.limit, run.config],
                      sort_keys=True, default=str)


def experiment_seeds(run: Run) -> dict[str, list[Run]]:
    """The runs of `run`'s experiment on its dataset: `all` of them, and the `latest` finished run per seed."""
    same = [r for r in runs_of(run.dataset).filter(method=run.method).order_by("-finished", "-id")
            if experiment_key(r) == experiment_key(run)]
    latest: dict[int, Run] = {}
    for r in same:
        if r.status not in ACTIVE:
            latest.setdefault(r.seed, r)
    return {"all": same, "latest": [latest[k] for k in sorted(latest)]}


# The name of the label sets webapp.runs.consensus writes.
CONSENSUS = "ICM consensus"


def consensus_of(dataset: Dataset, run_ids: list[int]) -> LabelSet | None:
    """The consensus label set of exactly these runs (webapp.runs.consensus), if one was written."""
    for label_set in LabelSet.objects.filter(dataset=dataset, name=CONSENSUS).order_by("-version"):
        if (label_set.configuration.get("consensus") or {}).get("runs") == sorted(run_ids):
            return label_set
    return None


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "min": None, "max": None, "std": None}
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) > 1 else None}


def _finished(dataset: Dataset) -> list[Run]:
    return list(runs_of(dataset).filter(status=RunStatus.SUCCEEDED).order_by("-finished", "-id"))


def experiments(dataset: Dataset, runs: list[Run] | None = None) -> list[dict[str, Any]]:
    """The dataset's finished runs (or `runs`, newest first) grouped into experiments over the same examples
    (one limit each), the latest first, each with its own method table: like with like, no method's figure
    stands beside another experiment's. Each: `limit`, `n_examples`, `runs` (how many) and `rows`."""
    if runs is None:
        runs = _finished(dataset)
    size = Example.objects.filter(dataset=dataset).count()
    gold = latest_gold(dataset)
    compared = gold_comparisons([r.label_set for r in runs if r.label_set is not None], gold)
    out = []
    for limit in dict.fromkeys(r.limit for r in runs):
        mine = [r for r in runs if r.limit == limit]
        n_examples = min(limit, size) if limit else size
        out.append({"limit": limit, "n_examples": n_examples, "runs": len(mine),
                    "rows": _method_rows(dataset, mine, limit=limit, n_examples=n_examples, gold=gold,
                                         compared=compared)})
    return out


def method_table(dataset: Dataset) -> list[dict[str, Any]]:
    """The latest experiment's table (`GET /api/datasets/{id}/methods/`): every method, with no seeds where
    nothing has finished."""
    runs = _finished(dataset)
    latest = experiments(dataset, [r for r in runs if r.limit == runs[0].limit]) if runs else []
    if latest:
        return latest[0]["rows"]
    size = Example.objects.filter(dataset=dataset).count()
    return _method_rows(dataset, [], limit=None, n_examples=size, gold=latest_gold(dataset), compared={})


def _method_rows(dataset: Dataset, runs: list[Run], *, limit: int | None, n_examples: int, gold: LabelSet | None,
                 compared: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One experiment's table (its finished runs, newest first; `compared`: their label sets against `gold`).
    For each method, the seeds of its latest settings (its latest finished run and every finished run with the
    same settings but another seed, the latest per seed), each against the latest gold: the mean accuracy, its
    min-max over the seeds and their number, and each seed's comparison. For ICM each seed's final U (the
    search's objective, no gold involved) and the label-free pick: the seed with the highest U, and whether it
    was also the most accurate."""
    rows = []
    for method, label in RunMethod.choices:
        mine = [r for r in runs if r.method == method]
        seeds: dict[int, Run] = {}
        for r in mine:
            if experiment_key(r) == experiment_key(mine[0]):
                seeds.setdefault(r.seed, r)
        entries = [{"seed": r.seed, "run": r, "gold": compared.get(r.label_set_id),
                    "final_u": (r.progress or {}).get("final_u")} for _, r in sorted(seeds.items())]
        accuracies = [e["gold"]["accuracy"] for e in entries if e["gold"] and e["gold"]["accuracy"] is not None]
        warned: dict[str, int] = {}
        for e in entries:
            # Against gold, and the run's own (found without gold: classes_not_named).
            codes = [*(e["gold"] or {}).get("warnings", []), *((e["run"].progress or {}).get("warnings") or [])]
            for code in dict.fromkeys(codes):
                warned[code] = warned.get(code, 0) + 1
        row = {"method": method, "label": label, "seeds": entries, "n_seeds": len(entries),
               "limit": limit, "n_examples": n_examples,
               "accuracy": _spread(accuracies), "warnings": warned,
               "majority_accuracy": _spread([e["gold"]["majority_accuracy"] for e in entries
                                             if e["gold"] and e["gold"]["n"]])["mean"],
               "pick": None, "pick_is_most_accurate": None}
        with_u = [e for e in entries if e["final_u"] is not None]
        if method == RunMethod.ICM and with_u:
            pick = max(with_u, key=lambda e: (e["final_u"], -e["seed"]))
            pick["pick"] = True
            row["pick"] = pick["seed"]
            if pick["gold"] and pick["gold"]["accuracy"] is not None and accuracies:
                row["pick_is_most_accurate"] = pick["gold"]["accuracy"] >= max(accuracies)
        row["consensus"] = None
        if method == RunMethod.ICM and len(entries) > 1:
            agreed = consensus_of(dataset, [e["run"].pk for e in entries])
            if agreed is not None:
                facts = agreed.configuration.get("consensus") or {}
                row["consensus"] = {"label_set": agreed.pk, "name": str(agreed), "seeds": facts.get("seeds"),
                                    "agreement": facts.get("agreement"), "kappa": facts.get("kappa"),
                                    "gold": gold_comparisons([agreed], gold).get(agreed.pk)}
        rows.append(row)
    return rows


def with_gold(dataset: Dataset, runs: list[Run]) -> list[Run]:
    """The runs, each with `gold`: its label set against the latest gold once it has one, else the live
    comparison its progress carries (None without gold)."""
    compared = gold_comparisons([r.label_set for r in runs if r.label_set is not None], latest_gold(dataset))
    for r in runs:
        r.gold = compared.get(r.label_set_id) or (r.progress or {}).get("gold")
    return runs


def method_table_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`method_table` for the API: runs by id."""
    return [{**{k: v for k, v in row.items() if k != "seeds"},
             "seeds": [{"seed": e["seed"], "run": e["run"].pk, "label_set": e["run"].label_set_id, "gold": e["gold"],
                        "final_u": e["final_u"], "pick": bool(e.get("pick"))} for e in row["seeds"]]}
            for row in rows]

