"""Reads: what the runs a start would queue will cost, priced at the pace of this server's earlier runs with
the same backend, model, method and readout (icm_engine.cost). No model call."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, QuerySet
from django.db.models.functions import Length

from icm_engine.facade import Estimate, Measured, estimate, total, work
from webapp.datasets.models import Dataset, Example

from .models import Run, RunMethod, RunStatus
from .selectors import planned_runs

# Enough earlier runs to see a spread, few enough that the pace is today's.
MEASURED_RUNS = 20


def dataset_size(dataset: Dataset) -> int:
    return Example.objects.filter(dataset=dataset).count()


def chars_per_example(dataset_ids: list[int]) -> dict[int, float]:
    rows = (Example.objects.filter(dataset_id__in=dataset_ids).values("dataset_id")
            .annotate(chars=Avg(Length("search_text"))))
    return {r["dataset_id"]: float(r["chars"] or 0.0) for r in rows}


def run_work(method: str, config: dict[str, Any], n: int, chars: float) -> float:
    return work(method, n, chars, int(config.get("batch_size") or 256), int(config.get("iterations") or 0),
                int(config.get("rounds") or 0))


def measured(runs: QuerySet[Run]) -> list[Measured]:
    """The finished runs' work and cost: seconds from the worker's claim to the labels written (the model's
    load included, as a user waits for it too)."""
    rows = list(runs.filter(status=RunStatus.SUCCEEDED, parent__isnull=True, started__isnull=False,
                            finished__isnull=False).order_by("-finished")
                .values("method", "config", "progress", "dataset_id", "started", "finished")[:MEASURED_RUNS])
    chars = chars_per_example(sorted({r["dataset_id"] for r in rows}))
    out = []
    for r in rows:
        progress = r["progress"] or {}
        n = int(progress.get("size") or 0)
        out.append(Measured(work=run_work(r["method"], r["config"] or {}, n, chars.get(r["dataset_id"], 0.0)),
                            seconds=(r["finished"] - r["started"]).total_seconds(),
                            tokens=int(progress.get("computed_tokens") or 0),
                            model_calls=int(progress.get("model_calls") or 0)))
    return out


def start_estimate(dataset: Dataset, *, method: str, seeds: list[int], baselines: bool | list[str], backend: str,
                   model: str,
                   n: int, icm_config: dict[str, Any], baseline_config: dict[str, Any]) -> dict[str, Any]:
    """Per run a start would queue: its method, seed and estimate (None where this server has measured no
    finished run like it), and the total of those estimated, with whether it exceeds an hour."""
    chars = chars_per_example([dataset.pk]).get(dataset.pk, 0.0)
    rows = []
    paces: dict[tuple[str, str], list[Measured]] = {}
    for planned, seed in planned_runs(dataset, method, seeds, baselines, icm_config.get("anchor") or "none",
                                      config=icm_config if method == RunMethod.ICM else baseline_config,
                                      baseline_config=baseline_config):
        config = icm_config if planned == method else baseline_config
        key = (planned, config.get("readout") or "")
        if key not in paces:
            paces[key] = measured(Run.objects.filter(backend=backend, model=model, method=planned,
                                                     config__readout=key[1]))
        rows.append({"method": RunMethod(planned).label, "seed": seed,
                     "estimate": estimate(run_work(planned, config, n, chars), paces[key])})
    known: list[Estimate] = [r["estimate"] for r in rows if r["estimate"] is not None]
    return {"runs": rows, "total": total(known), "unmeasured": sum(r["estimate"] is None for r in rows)}
