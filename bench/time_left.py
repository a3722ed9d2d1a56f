"""How true is the run page's time left? Runs ICM on runs of different sizes and compares the time left the
page would have shown (icm_engine.time_left, fed the same events the web app's Recorder gets) with the time
the run then really took.

Usage: python bench/time_left.py [--sizes 16,32,48] [--input FILE] [--task PRESET] [--out FILE.json]

The estimator's one constant (how a batch's model calls grow with its steps) was read off development traces
of the sanity set (`--input data/sanity/claims_dev.jsonl --task claims --sizes 24,48`, kept in
bench/results/time_left_dev.json); the measurement in docs/trust.md runs on other data, the first rows of the
paper's TruthfulQA train subset (the default here).

Each run uses the sizes' defaults (icm_engine.search.sized_to) and the preset's readout choice. For each it
prints, at the first event past a fifth (and half) of the steps: the time left shown, the true time left and
their ratio (shown / true; within 0.5-2 is the issue's bar). Development data only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from icm_engine.backends import get_backend
from icm_engine.defaults import resolve
from icm_engine.presets import get_task, load_dataset
from icm_engine.search import ICMConfig, ICMSearch, SearchEvent, make_batches, sized_to
from icm_engine.time_left import SMOOTH_SHARE, TimeLeft

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = (0.2, 0.5)


def one_run(path: Path, task_name: str, n: int, backend, seed: int) -> dict:
    task = get_task(task_name)
    settings, _ = resolve(task, {})
    data = load_dataset(path, task, limit=n, readout=settings["readout"])
    config = ICMConfig(**sized_to(len(data.examples)), **settings, seed=seed).validate()
    total = len(make_batches(data.examples, config.batch_size)) * config.iterations
    clock = TimeLeft(total, batch_steps=config.iterations)
    shown: list[tuple[int, float, float | None]] = []
    trace: list[tuple[int, float, int, int, int]] = []

    def on_event(ev: SearchEvent) -> None:
        step = total if ev.kind == "done" else ev.batch * ev.iterations + ev.iteration
        shown.append((step, ev.elapsed_s, clock.update(step, ev.elapsed_s, ev.stats.model_calls)))
        trace.append((step, round(ev.elapsed_s, 2), ev.stats.model_calls, ev.labeled, ev.stats.computed_tokens))

    result = ICMSearch(data.examples, task, backend, config, on_event=on_event).run()
    wall = shown[-1][1]  # the "done" event: the search's whole time
    row: dict = {"task": task_name, "file": path.name, "n": len(data.examples), "steps": total,
                 "iterations": config.iterations, "batch_size": config.batch_size, **settings, "seed": seed,
                 "wall_s": round(wall, 1), "model_calls": result.stats.model_calls,
                 "computed_tokens": result.stats.computed_tokens}
    for share in CHECKPOINTS:  # the first estimate shown at or after that share of the steps
        row[f"at_{int(share * 100)}pct"] = _at(shown, total, wall, share)
    row["trace"] = trace[:: max(1, len(trace) // 200)]  # (step, seconds, model calls, labeled, tokens), thinned
    return row


def _at(shown: list[tuple[int, float, float | None]], total: int, wall: float, share: float) -> dict:
    """The first estimate shown at or after `share` of the steps, beside the true time left."""
    step, elapsed, left = next(x for x in shown if x[0] >= share * total and x[2] is not None)
    true = wall - elapsed
    return {"step": step, "elapsed_s": round(elapsed, 1), "shown_s": round(left, 1), "true_s": round(true, 1),
            "ratio": round(left / true, 2) if true > 0 else None}


def largest_rise(shown: list[tuple[int, float, float | None]], total: int, within_s: float = 60.0) -> float:
    """After a fifth of the steps, the most the time left shown rose within `within_s` seconds: a true
    estimate only falls, so a rise is a swing the model work left did not make."""
    points = [(t, v) for step, t, v in shown if v is not None and step >= total / 5]
    worst = 0.0
    for i, (t, v) in enumerate(points):
        for t2, v2 in points[i + 1:]:
            if t2 - t > within_s:
                break
            worst = max(worst, v2 - v)
    return worst


def replay(rows: list[dict]) -> list[dict]:
    """Each recorded run's events (its trace: thinned to about 200) through today's estimator, smoothed as the
    page shows it and raw, without the model: how true it is and how far it swings."""
    out = []
    for r in rows:
        total, wall = r["steps"], r["wall_s"]
        row = {k: r[k] for k in ("n", "steps", "wall_s", "model_calls")}
        for name, share in (("shown", SMOOTH_SHARE), ("raw", 0.0)):
            clock = TimeLeft(total, batch_steps=r["iterations"], smooth_share=share)
            shown = [(step, t, clock.update(step, t, calls)) for step, t, calls, *_ in r["trace"]]
            row[name] = {"at_20pct": _at(shown, total, wall, 0.2), "at_50pct": _at(shown, total, wall, 0.5),
                         "largest_rise_60s": round(largest_rise(shown, total), 1)}
        out.append(row)
    return out


def replay_table(rows: list[dict]) -> str:
    lines = ["| examples | search's wall time | after a fifth: smoothed (raw) / true | after half: smoothed (raw) / "
             "true | largest rise within 60 s: smoothed (raw) |", "|---|---|---|---|---|"]
    for r in rows:
        s, w = r["shown"], r["raw"]
        cells = [f"{s[k]['shown_s']:.0f} s ({w[k]['shown_s']:.0f} s) / {s[k]['true_s']:.0f} s"
                 for k in ("at_20pct", "at_50pct")]
        lines.append(f"| {r['n']} | {r['wall_s']:.0f} s | {cells[0]} | {cells[1]} | "
                     f"{s['largest_rise_60s']:.0f} s ({w['largest_rise_60s']:.0f} s) |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """The markdown table docs/trust.md holds."""
    lines = ["| examples | steps | search's wall time | model calls | after a fifth: shown / true (ratio) | "
             "after half: shown / true (ratio) |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['shown_s']:.0f} s / {r[k]['true_s']:.0f} s ({r[k]['ratio']})" if r[k]["true_s"] >= 1
                 else f"{r[k]['shown_s']:.0f} s / done" for k in ("at_20pct", "at_50pct")]
        lines.append(f"| {r['n']} | {r['steps']} | {r['wall_s']:.0f} s | {r['model_calls']} | "
                     f"{cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path,
                    default=ROOT / "data" / "paper" / "truthfulqa" / "praxis_subset_train.json")
    ap.add_argument("--task", default="truthfulqa")
    ap.add_argument("--sizes", default="16,32,48")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", type=Path, help="print the markdown table of an earlier --out file; run nothing")
    ap.add_argument("--replay", type=Path, nargs="+",
                    help="replay the traces of earlier --out files through today's estimator; run nothing")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    if args.replay:
        print(replay_table(replay([r for path in args.replay for r in json.loads(path.read_text())])))
        return
    backend = get_backend("transformers")
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        rows.append(one_run(args.input, args.task, n, backend, args.seed))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    ok = all(0.5 <= (r["at_20pct"]["ratio"] or 0) <= 2 for r in rows)
    print(f"time left within 2x of the truth after a fifth of every run: {ok}", file=sys.stderr)


if __name__ == "__main__":
    main()
