"""The `icm` command: label | baseline | evaluate | bench.

Outputs are written only when a command succeeds (to a temporary file, then renamed), so bad input
leaves no output file behind. Errors are one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli_args import READOUT_SETTINGS, build_parser, given_settings, make_backend, make_task
from .defaults import describe as describe_defaults
from .examples import DataError, LoadedData, load_labels, match_ids
from .orientation import orientation_warnings
from .presets import load_dataset
from .run_settings import BASELINE_SETTINGS, ICM_SETTINGS, settings_for
from .search import ICMConfig
from .util import atomic_write

EXIT_INPUT = 2
EXIT_BACKEND = 3


def _labels_jsonl(data: LoadedData, labels: Sequence[bool | None], scores: Sequence[float | None]) -> str:
    lines = []
    for ex, y, s in zip(data.examples, labels, scores, strict=True):
        lines.append(json.dumps({"id": ex.id, "label": y, "score": None if s is None else round(s, 6)}))
    return "\n".join(lines) + "\n"


def _report(args, data: LoadedData, labels, scores, stats, wall_s: float, extra: dict[str, Any]) -> dict[str, Any]:
    from .metrics import label_metrics

    gold = data.gold_list()
    metrics = label_metrics(labels, gold, scores) if data.gold else {}
    report: dict[str, Any] = {
        "input": str(args.input),
        "n": len(data.examples),
        "labeled": sum(y is not None for y in labels),
        **_gold_fields(metrics),
        **stats.as_dict(),
        "wall_s": round(wall_s, 3),
        "examples_per_minute": round(len(data.examples) / wall_s * 60, 2) if wall_s else None,
        "peak_rss_mb": _peak_rss_mb(),
        "readout": args.readout,
        "context": args.context,
        "calibrate": args.calibrate,
        "centre": args.centre,
        "defaults": describe_defaults(make_task(args), args.from_preset),
        "seed": args.seed,
    }
    report.update(extra)
    return report


def _gold_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a report says of a label set against gold: the accuracy never without n, the majority-class rate,
    the set's balance, the interval and the warnings (empty when the input has no gold)."""
    keys = ("accuracy", "ci_low", "ci_high", "n_compared", "majority_accuracy", "balance", "p_vs_majority", "auroc")
    out = {k: metrics.get(k) for k in keys}
    out["n_gold"] = metrics.get("n_gold", 0)
    out["predicted_true_rate"] = metrics.get("balance")
    out["warnings"] = list(metrics.get("warnings", []))
    return out


def _peak_rss_mb() -> float | None:
    """The process's peak resident memory so far (model included)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


class _Progress:
    def __init__(self, total: int, quiet: bool, desc: str):
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def to(self, n: int, **post: Any) -> None:
        """Move the bar to `n` done."""
        if self.bar is not None:
            self.update(n - self.bar.n, **post)

    def update(self, n: int = 1, **post: Any) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if post:
                self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_label(args: argparse.Namespace) -> int:
    from .job import plan_job, run_icm_job
    from .search import read_checkpoint

    task = make_task(args)
    data = load_dataset(args.input, task, limit=args.limit, readout=args.readout,
                        anchor=args.anchor == "likelihood")
    config = replace(settings_for(task, len(data.examples), args.given)[0], seed=args.seed)
    backend = make_backend(args)
    checkpoint = read_checkpoint(args.checkpoint) if args.checkpoint else None
    batches = plan_job(data.examples, config).batches
    bar = _Progress(len(batches) * config.iterations, args.quiet, "icm")

    def on_event(ev, labels) -> None:
        if ev.kind == "iteration":  # a resumed search starts where it stopped
            bar.to(ev.batch * ev.iterations + ev.iteration, U=f"{ev.score:.2f}", T=f"{ev.temperature:.2f}",
                   labeled=ev.labeled, acc=ev.accepted_total)

    def save(state: dict) -> None:
        atomic_write(args.checkpoint, json.dumps(state))

    job = run_icm_job(data.examples, task, backend, config, checkpoint=checkpoint, on_event=on_event,
                      on_checkpoint=save if args.checkpoint else None)
    result = job.result
    bar.close()
    if args.checkpoint:
        # The finished search, before its outputs: if writing them fails (a full disk), the same command
        # resumes here and only writes.
        save(job.checkpoint())
    atomic_write(args.out, _labels_jsonl(data, result.labels, result.scores))
    report = _report(args, data, result.labels, result.scores, result.stats, result.wall_s, {
        "method": "icm", "task": task.describe(), "backend": backend.describe(), "config": config.as_dict(),
        "iterations": result.iterations, "accepted": result.accepted, "rejected": result.rejected,
        "cache_hits": result.cache_hits,
        "batches": len(batches), "flipped_batches": result.flipped_batches,
        "searched": job.searched, "completed": result.completed,
        "settled": result.settled, "orientation": result.orientation, "anchor": result.anchor,
    })
    report["warnings"] += orientation_warnings(result.orientation)
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=2) + "\n")
    if args.checkpoint and Path(args.checkpoint).exists():
        Path(args.checkpoint).unlink()
    _summary(report)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench

    task = make_task(args)
    data = load_dataset(args.input, task, limit=args.limit, readout=args.readout)
    if not data.gold:
        raise DataError([_no_gold(args.input)])
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    config = ICMConfig(iterations=args.iterations, num_seed=args.num_seed, batch_size=args.batch_size,
                       readout=args.readout, context=args.context, calibrate=args.calibrate, centre=args.centre,
                       context_cap=args.context_cap, demo_order=args.demo_order[0],
                       semantics=args.semantics, folds=args.folds, complete=False, orient="none").validate()
    backend = make_backend(args)
    result = bench(backend, task, data.examples, data.gold_list(), config, seeds,
                   log=lambda line: print(line, flush=True), orders=args.demo_order, modes=args.modes,
                   checkpoint_dir=args.checkpoint_dir, limit_tokens=args.limit_tokens)
    result["backend"] = backend.describe()
    if args.report:
        atomic_write(args.report, json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "runs"}
    print(json.dumps(summary))
    return 0


def cmd_bench_summary(args: argparse.Namespace) -> int:
    from .bench import row_line, summarize
    from .examples import Problem

    rows: list[dict] = []
    orders: list[str] = []
    settings: set[tuple] = set()
    for name in args.reports:
        try:
            report = json.loads(Path(name).read_text())
            rows.extend(report["runs"])
            settings.add((report["n"], report["iterations"], report.get("semantics"), report.get("context_cap")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError([Problem(Path(name).name, None, None, f"not an icm bench report ({exc})")]) from exc
        orders += [o for o in report.get("by_order") or [report.get("demo_order")] if o and o not in orders]
    if len(settings) > 1:
        raise DataError([Problem(", ".join(Path(n).name for n in args.reports), None, None,
                                 f"the reports ran different settings (n, iterations, semantics, cap): "
                                 f"{sorted(settings, key=str)}")])
    for row in rows:
        print(row_line(row))
    n, iterations, semantics, cap = settings.pop()
    print(json.dumps({**summarize(rows, orders), "semantics": semantics, "n": n, "iterations": iterations,
                      "context_cap": cap, "reports": list(args.reports)}))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baselines import run_baseline

    task = make_task(args)
    data = load_dataset(args.input, task, limit=args.limit, readout=args.readout, anchor=args.method == "likelihood")
    gold = data.gold_list()
    if args.method == "gold-icl" and None in gold:
        from .examples import Problem

        row = gold.index(None) + 1
        raise DataError([Problem(Path(args.input).name, row, "label", "gold-icl needs a gold label on every row")])
    backend = make_backend(args)
    bar = _Progress(len(data.examples), args.quiet, args.method)
    config = settings_for(task, len(data.examples), args.given, method="baseline")[0]
    result = run_baseline(args.method, data.examples, task, backend, config, gold=gold, seed=args.seed,
                          on_progress=bar.update)
    bar.close()
    atomic_write(args.out, _labels_jsonl(data, result.labels, result.scores))
    report = _report(args, data, result.labels, result.scores, result.stats, result.wall_s, {
        "method": args.method, "task": task.describe(), "backend": backend.describe(), "shots": args.shots,
    })
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=2) + "\n")
    _summary(report)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .baselines import evaluate_test
    from .metrics import label_metrics

    task = make_task(args)
    train = load_dataset(args.train, task, readout=args.readout)
    test = load_dataset(args.test, task, limit=args.limit, readout=args.readout)
    labels = match_ids(train.examples, load_labels(args.labels), Path(args.labels).name)
    if not test.gold:
        raise DataError([_no_gold(args.test)])
    backend = make_backend(args)
    out = evaluate_test(test.examples, train.examples, labels, task, backend, readout=args.readout,
                        shots=args.shots, seed=args.seed, calibrate=args.calibrate)
    metrics = label_metrics(out["labels"], test.gold_list(), out["scores"])
    stats = out["stats"]
    report = {
        "test": args.test, "train": args.train, "labels": args.labels, "n": len(test.examples),
        "demonstrations": out["demonstrations"], **_gold_fields(metrics),
        **stats.as_dict(), "wall_s": round(out["wall_s"], 3),
        "task": task.describe(), "backend": backend.describe(), "readout": args.readout,
        "calibrate": args.calibrate, "defaults": describe_defaults(make_task(args), args.from_preset),
    }
    if args.report:
        atomic_write(args.report, json.dumps(report, indent=2) + "\n")
    _summary(report)
    return 0


def _no_gold(path: str):
    from .examples import Problem

    return Problem(Path(path).name, None, "label", "the test file has no gold labels to evaluate against")


def _summary(report: dict[str, Any]) -> None:
    """The report's figures on stdout, one JSON line; each warning about the labels against gold on stderr."""
    from .metrics import warning_lines

    keys = ("n", "labeled", "searched", "completed", "accuracy", "n_compared", "majority_accuracy", "balance", "auroc",
            "warnings",
            "model_calls", "prompt_tokens", "computed_tokens", "wall_s", "examples_per_minute", "peak_rss_mb")
    print(json.dumps({k: report[k] for k in keys if k in report}))
    if report.get("n_compared"):
        comparison = {**report, "n": report["n_compared"]}  # the items compared, not the input's rows
        for line in warning_lines(comparison):
            print(f"icm: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from .backends.base import BackendError

    args = build_parser().parse_args(argv)
    handlers = {"label": cmd_label, "baseline": cmd_baseline, "evaluate": cmd_evaluate, "bench": cmd_bench,
                "bench-summary": cmd_bench_summary}
    try:
        if args.command == "bench":
            # The scorers' benchmark compares reference and fast under the official code's readout (verdict
            # over all others, uncalibrated), as its figures were measured; the presets' choices are not for it.
            args.readout, args.context = args.readout or "verdict", args.context or "all"
            args.calibrate, args.centre = bool(args.calibrate), args.centre or "batch"
            args.folds = args.folds or ICMConfig().folds
        elif hasattr(args, "readout"):
            # The settings given, and what the preset's choice adds, before the data is read (its readout says
            # which fields the data needs); each command sizes them to the data with `settings_for` again.
            kind = "icm" if args.command == "label" else "baseline"
            # `icm evaluate` takes the readout settings; its --shots is its own (0: no demonstrations).
            names = ICM_SETTINGS if kind == "icm" else READOUT_SETTINGS if args.command == "evaluate" \
                else BASELINE_SETTINGS
            args.given = given_settings(args, names)
            config, args.from_preset = settings_for(make_task(args), None, args.given, method=kind)
            for name in ("readout", "context", "calibrate", "centre", "folds", "anchor"):
                if hasattr(config, name):
                    setattr(args, name, getattr(config, name))
        return handlers[args.command](args)
    except DataError as exc:
        print(f"icm: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (ValueError, OSError) as exc:
        print(f"icm: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BackendError as exc:
        print(f"icm: backend error: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except KeyboardInterrupt:
        print("icm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
