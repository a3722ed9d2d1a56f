"""`icm bench`: the `reference` and `fast` modes on the same data, model, seeds and iteration budget, in
one process, with what each cost.

For each mode it reports label accuracy against gold, model calls, prompt tokens, tokens the model
actually computed, wall time and peak resident memory; it also measures the backend's peak
throughput (tokens/s on a batch of independent short prompts), its forward-pass limit (tokens/s on a
batch of long independent prompts, the most a backend can compute) and the share of each a mode sustained.
The last line printed is one JSON object with the ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backends.base import Backend
from .examples import Example
from .metrics import label_metrics
from .presets import Task
from .search import ICMConfig, ICMSearch, fingerprint, read_checkpoint
from .util import atomic_write, rss_bytes

# The least time between a bench run's checkpoints (seconds); saves come between iterations.
CHECKPOINT_EVERY_S = 10.0


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
    encode = backend.encode if backend.capabilities.tokenizer else None
    while tokens < min_tokens:
        for ex in examples:
            # Each prompt starts differently, so no backend can reuse a prefix between them.
            prompt = f"{len(prompts)}. " + task.render(ex)
            prompts.append(prompt)
            tokens += len(encode(prompt)) if encode else len(prompt.split())
            if tokens >= min_tokens:
                break
    return _best_rate(backend, task, prompts, warmup=4, repeats=repeats)


def _best_rate(backend: Backend, task: Task, prompts: list[str], warmup: int, repeats: int) -> float:
    """Computed tokens/s over all `prompts` in one call, without prefix reuse: the best of `repeats` calls
    after a warm-up call on the first `warmup`."""
    options = {"share_prefixes": False} if backend.capabilities.prefix_sharing else {}
    backend.label_logprobs(prompts[:warmup], list(task.label_words), **options)
    best = 0.0
    for _ in range(max(repeats, 1)):
        before = backend.stats.copy()
        start = time.perf_counter()
        backend.label_logprobs(prompts, list(task.label_words), **options)
        wall = time.perf_counter() - start
        best = max(best, backend.stats.minus(before).computed_tokens / wall)
    return best


def forward_limit(backend: Backend, task: Task, examples: Sequence[Example], width: int = 512,
                  batch_tokens: int = 4096, repeats: int = 2) -> float:
    """Tokens/s the backend computes on `batch_tokens` of independent prompts about `width` tokens long (the
    best of `repeats` passes, no prefix reuse): the forward pass's own speed, which short prompts understate
    (their fixed cost per prompt and per call weighs more). A mode's share of it is how near the model's
    limit the search runs."""
    def size(text: str) -> int:
        return len(backend.encode(text)) if backend.capabilities.tokenizer else len(text.split())

    texts = [task.render(ex) for ex in examples] or ["x"]
    prompts: list[str] = []
    while len(prompts) * width < batch_tokens:
        # Each prompt starts differently, so no backend can reuse a prefix between them.
        parts, tokens, k = [f"{len(prompts)}."], 0, len(prompts)
        while tokens < width:
            parts.append(texts[k % len(texts)])
            tokens += size(parts[-1])
            k += 1
        prompts.append("\n\n".join(parts))
    return _best_rate(backend, task, prompts, warmup=1, repeats=repeats)


def run_mode(backend: Backend, task: Task, examples: Sequence[Example], gold: Sequence[bool | None],
             config: ICMConfig, checkpoint: Path | None = None) -> dict[str, Any]:
    """One search and what it cost. With `checkpoint`, the search state is saved there after an iteration
    once CHECKPOINT_EVERY_S seconds have passed since the last save, and a search found there continues:
    an interrupted reference run (hours on 2 cores) loses the iteration in progress, and its wall time and
    counts add up the runs' parts."""
    if backend.capabilities.prefix_cache:
        backend.reset_prefix_cache()
    state = read_checkpoint(checkpoint) if checkpoint is not None else None
    # What earlier parts of this run measured; the search's own checkpoint ignores this key.
    earlier = (state or {}).get("bench", {})
    # Processes that worked on this run, this one included (an `icm label --checkpoint` file of the same
    # search has no "bench" key: one process, whose memory was not measured).
    parts = (earlier.get("parts", 1) if state else 0) + 1
    start_rss = earlier.get("start_rss_mb") or round(rss_bytes() / 2**20, 1)
    with PeakMemory() as memory:
        last_save = [time.monotonic()]

        def peak_mb() -> float:  # over all of the run's parts
            return max(earlier.get("peak_rss_mb", 0.0), round(memory.peak / 2**20, 1))

        def save(_event: object) -> None:
            if checkpoint is not None and time.monotonic() - last_save[0] >= CHECKPOINT_EVERY_S:
                ck = {**search.checkpoint(), "bench": {"start_rss_mb": start_rss, "peak_rss_mb": peak_mb(),
                                                       "parts": parts}}
                atomic_write(checkpoint, json.dumps(ck))
                last_save[0] = time.monotonic()

        try:
            search = ICMSearch(examples, task, backend, config, on_event=save, checkpoint=state)
        except ValueError as exc:
            if state is None:
                raise
            raise ValueError(f"{checkpoint}: {exc}") from exc
        result = search.run()
    stats, wall = result.stats, result.wall_s
    metrics = label_metrics(result.labels, gold, result.scores)
    return {
        "mode": config.mode, "seed": config.seed, "accuracy": metrics["accuracy"], "auroc": metrics.get("auroc"),
        "labeled": sum(y is not None for y in result.labels), **stats.as_dict(),
        "wall_s": round(wall, 3),
        "peak_rss_mb": peak_mb(),
        "start_rss_mb": start_rss,  # resident when the mode began (the model, the runtime)
        "tokens_per_s": stats.computed_tokens / wall if wall else None,
        # How many processes the run took (more than one: resumed from a checkpoint).
        "parts": parts,
        # Kept so that runs of one seed can be compared label by label, also across reports.
        "labels": list(result.labels),
    }


def _finished_row(path: Path, config: ICMConfig, fingerprint: str) -> dict[str, Any] | None:
    """A run that a bench with the same checkpoint folder finished before, if it was this very run."""
    if not path.exists():
        return None
    try:
        row = json.loads(path.read_text())
        same = row["config"] == config.as_dict() and row["fingerprint"] == fingerprint
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a finished bench run ({exc})") from exc
    if not same:
        raise ValueError(f"{path}: a run of other examples or settings; use another --checkpoint-dir")
    return row


def bench(backend: Backend, task: Task, examples: Sequence[Example], gold: Sequence[bool | None],
          base: ICMConfig, seeds: Sequence[int], log=print, orders: Sequence[str] | None = None,
          modes: Sequence[str] = ("reference", "fast"), checkpoint_dir: str | Path | None = None,
          limit_tokens: int = 4096) -> dict[str, Any]:
    """`orders`: the demonstration orders to run `fast` with, each against the same reference run; the
    summary's top-level figures are the first order's, `by_order` has them all. `modes` may leave out
    either mode (the ratios are then None). With `checkpoint_dir`, each run checkpoints there and is kept
    there when it finishes: the same command run again skips finished runs and resumes the unfinished one.
    `limit_tokens`: the batch the forward-pass limit is measured on (0: not measured)."""
    orders = list(orders or [base.demo_order])
    peak = peak_throughput(backend, task, examples)
    log(f"backend peak throughput: {peak:.0f} tokens/s on independent prompts")
    limit = forward_limit(backend, task, examples, batch_tokens=limit_tokens) if limit_tokens > 0 else None
    if limit:
        log(f"backend forward-pass limit: {limit:.0f} tokens/s on {limit_tokens} tokens of 512-token prompts")
    rows: list[dict[str, Any]] = []
    prints = fingerprint(examples, task)
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
            finished = checkpoint = None
            if checkpoint_dir:
                stem = Path(checkpoint_dir) / f"seed{seed}-{name.replace(' ', '-')}"
                finished, checkpoint = stem.with_suffix(".json"), stem.with_suffix(".checkpoint.json")
            row = _finished_row(finished, cfg, prints) if finished is not None else None
            if row is not None:
                rows.append(row)
                log(row_line(row) + f" (finished earlier: {finished})")
                continue
            row = run_mode(backend, task, examples, gold, cfg, checkpoint)
            row["variant"] = name
            row["demo_order"] = cfg.demo_order
            row["semantics"] = cfg.effective_semantics
            # Each run's share is against the peak measured in the process that finished it.
            row["peak_tokens_per_s"] = round(peak, 1)
            row["share_of_peak"] = row["tokens_per_s"] / peak if row["tokens_per_s"] and peak else None
            row["forward_limit_tokens_per_s"] = round(limit, 1) if limit else None
            row["share_of_forward_limit"] = row["tokens_per_s"] / limit if row["tokens_per_s"] and limit else None
            if finished is not None:  # and so is its checkpoint
                atomic_write(finished,
                             json.dumps({**row, "config": cfg.as_dict(), "fingerprint": prints}, indent=1) + "\n")
                checkpoint.unlink(missing_ok=True)
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
            f"({100 * (row.get('share_of_peak') or 0):.0f}% of peak, "
            f"{100 * (row.get('share_of_forward_limit') or 0):.1f}% of the forward-pass limit)")


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
            "fast_share_of_forward_limit": mean(variant, "share_of_forward_limit"),
            "fast_peak_rss_mb": max((r["peak_rss_mb"] for r in rows if r["variant"] == variant), default=None),
        }

    by_order = {order: figures(order) for order in orders}
    first = by_order[orders[0]]
    peaks = [r["peak_tokens_per_s"] for r in rows if r.get("peak_tokens_per_s")]
    limits = [r["forward_limit_tokens_per_s"] for r in rows if r.get("forward_limit_tokens_per_s")]
    return {
        "token_ratio": first["token_ratio"],
        "time_ratio": first["time_ratio"],
        "acc_reference": mean("reference", "accuracy"),
        "acc_fast": first["acc_fast"],
        "peak_tokens_per_s": round(statistics.fmean(peaks), 1) if peaks else None,
        "fast_share_of_peak": first["fast_share_of_peak"],
        "reference_share_of_peak": mean("reference", "share_of_peak"),
        "forward_limit_tokens_per_s": round(statistics.fmean(limits), 1) if limits else None,
        "fast_share_of_forward_limit": first["fast_share_of_forward_limit"],
        "reference_share_of_forward_limit": mean("reference", "share_of_forward_limit"),
        "demo_order": orders[0], "by_order": by_order,
        "seeds": sorted({r["seed"] for r in rows}),
    }
