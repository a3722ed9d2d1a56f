"""`icm bench`: the `reference` and `fast` modes on the same data, model, seeds and iteration budget, in
one process, with what each cost.

For each mode it reports label accuracy against gold, model calls, prompt tokens, tokens the model
actually computed, wall time and peak resident memory; it also measures the backend's peak
throughput (tokens/s on a batch of independent prompts) and the share of it each mode sustained.
The last line printed is one JSON object with the ratios.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from .backends.base import Backend
from .examples import Example
from .metrics import label_metrics
from .search import ICMConfig, ICMSearch
from .tasks import Task
from .util import rss_bytes


class PeakMemory:
    """Samples resident memory in a thread while a block runs; `.peak` is the highest seen."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def peak_throughput(backend: Backend, task: Task, examples: Sequence[Example], min_tokens: int = 6000,
                    repeats: int = 3) -> float:
    """Tokens/s the backend computes on a large batch of independent prompts (no shared prefixes): the best
    of `repeats` passes. One 10-second pass read anywhere from 633 to 815 tokens/s on one 2-core machine, so
    a single reading could flatter a mode's share of it; the best reading is the conservative one."""
    prompts: list[str] = []
    tokens = 0
    encode = getattr(backend, "encode", None)
    while tokens < min_tokens:
        for ex in examples:
            # Each prompt starts differently, so no backend can reuse a prefix between them.
            prompt = f"{len(prompts)}. " + task.render(ex)
            prompts.append(prompt)
            tokens += len(encode(prompt)) if encode else len(prompt.split())
            if tokens >= min_tokens:
                break
    options = {"share_prefixes": False} if getattr(backend, "share_prefixes", None) is not None else {}
    backend.label_logprobs(prompts[:4], list(task.label_words), **options)  # warm up
    best = 0.0
    for _ in range(max(repeats, 1)):
        before = backend.stats.copy()
        start = time.perf_counter()
        backend.label_logprobs(prompts, list(task.label_words), **options)
        wall = time.perf_counter() - start
        best = max(best, backend.stats.minus(before).computed_tokens / wall)
    return best


def run_mode(backend: Backend, task: Task, examples: Sequence[Example], gold: Sequence[bool | None],
             config: ICMConfig) -> dict[str, Any]:
    reset = getattr(backend, "reset_prefix_cache", None)
    if reset is not None:
        reset()
    before = backend.stats.copy()
    start_rss = rss_bytes()
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = ICMSearch(examples, task, backend, config).run()
        wall = time.perf_counter() - start
    stats = backend.stats.minus(before)
    metrics = label_metrics(result.labels, gold, result.scores)
    return {
        "mode": config.mode, "seed": config.seed, "accuracy": metrics["accuracy"], "auroc": metrics.get("auroc"),
        "labeled": sum(y is not None for y in result.labels), "model_calls": stats.calls,
        "prompts": stats.prompts, "prompt_tokens": stats.prompt_tokens, "computed_tokens": stats.computed_tokens,
        "wall_s": round(wall, 3), "peak_rss_mb": round(memory.peak / 2**20, 1),
        "start_rss_mb": round(start_rss / 2**20, 1),  # resident when the mode began (the model, the runtime)
        "tokens_per_s": stats.computed_tokens / wall if wall else None,
        # Kept so that runs of one seed can be compared label by label, also across reports.
        "labels": list(result.labels),
    }


def bench(backend: Backend, task: Task, examples: Sequence[Example], gold: Sequence[bool | None],
          base: ICMConfig, seeds: Sequence[int], log=print, orders: Sequence[str] | None = None,
          modes: Sequence[str] = ("reference", "fast")) -> dict[str, Any]:
    """`orders`: the demonstration orders to run `fast` with, each against the same reference run; the
    summary's top-level figures are the first order's, `by_order` has them all. `modes` may leave out
    either mode (the ratios are then None)."""
    orders = list(orders or [base.demo_order])
    peak = peak_throughput(backend, task, examples)
    log(f"backend peak throughput: {peak:.0f} tokens/s on independent prompts")
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        runs: list[tuple[str, dict[str, Any]]] = []
        if "reference" in modes:
            # The official code's semantics: every demonstration, always, in position order.
            runs.append(("reference", {"mode": "reference", "context_cap": None, "demo_order": "position",
                                       "semantics": None}))
        if "fast" in modes:
            runs.extend((f"fast {order}", {"mode": "fast", "demo_order": order}) for order in orders)
        for name, overrides in runs:
            cfg = ICMConfig(**{**base.as_dict(), **overrides, "seed": seed}).validate()
            row = run_mode(backend, task, examples, gold, cfg)
            row["variant"] = name
            row["demo_order"] = cfg.demo_order
            row["semantics"] = cfg.effective_semantics
            row["peak_tokens_per_s"] = round(peak, 1)
            row["share_of_peak"] = row["tokens_per_s"] / peak if row["tokens_per_s"] and peak else None
            rows.append(row)
            log(row_line(row))
    return {
        **summarize(rows, orders),
        "semantics": base.effective_semantics, "n": len(examples), "iterations": base.iterations,
        "context_cap": base.context_cap, "threads": os.environ.get("ICM_THREADS") or os.cpu_count(),
        "runs": rows,
    }


def row_line(row: dict[str, Any]) -> str:
    """One run's figures on one line."""
    return (f"seed {row['seed']} {row['variant']:14s} accuracy {row['accuracy']} calls {row['model_calls']} "
            f"prompt tokens {row['prompt_tokens']} computed {row['computed_tokens']} wall {row['wall_s']} s "
            f"peak RSS {row['peak_rss_mb']} MB (from {row.get('start_rss_mb')} MB) "
            f"sustained {row['tokens_per_s'] or 0:.0f} tok/s "
            f"({100 * (row.get('share_of_peak') or 0):.0f}% of peak)")


def summarize(rows: Sequence[dict[str, Any]], orders: Sequence[str]) -> dict[str, Any]:
    """Means over seeds of what each mode cost, and the ratios; rows may come from several bench runs
    (each row's share of peak is against the peak measured in its own run)."""

    def mean(variant: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["variant"] == variant and r.get(key) is not None]
        return statistics.fmean(values) if values else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    ref_tokens, ref_wall = mean("reference", "computed_tokens"), mean("reference", "wall_s")
    ref_labels = {r["seed"]: r["labels"] for r in rows if r["variant"] == "reference" and r.get("labels")}

    def agreement(variant: str) -> tuple[float | None, float | None]:
        """Over seeds, the mean share of the examples both runs labeled where `variant` gave the
        reference's label, and the mean number of such examples. With an iteration budget that leaves
        examples unlabeled, two search paths mostly differ in which examples they label, not how."""
        shares, counts = [], []
        for r in rows:
            if r["variant"] != variant or not r.get("labels") or r["seed"] not in ref_labels:
                continue
            both = [(a, b) for a, b in zip(ref_labels[r["seed"]], r["labels"], strict=True)
                    if a is not None and b is not None]
            counts.append(len(both))
            if both:
                shares.append(statistics.fmean(a == b for a, b in both))
        return (statistics.fmean(shares) if shares else None), (statistics.fmean(counts) if counts else None)

    def figures(order: str) -> dict[str, Any]:
        variant = f"fast {order}"
        agree, both = agreement(variant)
        return {
            "token_ratio": ratio(ref_tokens, mean(variant, "computed_tokens")),
            "time_ratio": ratio(ref_wall, mean(variant, "wall_s")),
            "acc_fast": mean(variant, "accuracy"),
            "label_agreement": agree,
            "both_labeled": both,
            "fast_share_of_peak": mean(variant, "share_of_peak"),
            "fast_peak_rss_mb": max((r["peak_rss_mb"] for r in rows if r["variant"] == variant), default=None),
        }

    by_order = {order: figures(order) for order in orders}
    first = by_order[orders[0]]
    peaks = [r["peak_tokens_per_s"] for r in rows if r.get("peak_tokens_per_s")]
    return {
        "token_ratio": first["token_ratio"],
        "time_ratio": first["time_ratio"],
        "acc_reference": mean("reference", "accuracy"),
        "acc_fast": first["acc_fast"],
        "peak_tokens_per_s": round(statistics.fmean(peaks), 1) if peaks else None,
        "fast_share_of_peak": first["fast_share_of_peak"],
        "reference_share_of_peak": mean("reference", "share_of_peak"),
        "demo_order": orders[0], "by_order": by_order,
        "seeds": sorted({r["seed"] for r in rows}),
    }
