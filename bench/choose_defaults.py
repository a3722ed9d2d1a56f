"""Choose each task preset's defaults for the packaged model by what ICM itself finds, on development data only
(the sanity set's and the comparisons set's dev halves, slices of the paper's train and dev files in data/paper/;
never the paper's evaluation halves).

    python bench/choose_defaults.py run --out bench/results/defaults_icm.jsonl [--files claims,comparisons]
    python bench/choose_defaults.py table bench/results/defaults_icm.jsonl

`run` loads the model once and, for every dev file and candidate search setting (readout, context, calibration
scope, likelihood anchor), runs ICM over three seeds with completion on and no orientation, then names each
seed's classes under every orientation setting from the same signals (the orientation does not change the
search, so one search serves all of them). Beside it, once per file and readout: zero-shot, the likelihood
baseline, bootstrap and golden-label ICL. One JSON line per run. `table` prints the tables docs/defaults.md and
docs/results.md hold, the choice (per preset, the candidate with the best mean ICM accuracy under the default
orientation, its worst seed breaking ties) and issue 36's targets on the sanity dev half.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from icm_engine.anchor import likelihood_anchor
from icm_engine.backends import get_backend
from icm_engine.baselines import BaselineConfig, run_baseline
from icm_engine.consensus import consensus
from icm_engine.consistency import ConsistencyRule
from icm_engine.examples import LoadedData, read_rows
from icm_engine.metrics import label_metrics
from icm_engine.orientation import AUTO, FALLBACK, decide, split_zero_shot_values, zero_shot_values
from icm_engine.presets import Task, get_task, load_dataset
from icm_engine.search import ICMConfig, ICMSearch, sized_to
from icm_engine.search.completion import mirrored

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "data" / "paper"
# A file name's suffix: its questions rewritten to name the false option first (false_option_first).
FALSE_FIRST = "-false-first"
# Development files only, with how many rows of each (whole groups): 40 claims a file, 24 rows of the long
# GSM8K solutions and Alpaca responses (a prompt there is ten times longer).
FILES = {
    "claims": ("claims", ROOT / "data" / "sanity" / "claims_dev.jsonl", "key:answer", 40),
    "comparisons": ("claims", ROOT / "data" / "comparisons" / "comparisons_dev.jsonl", "key:answer", 40),
    # The same two files as the truthfulqa preset reads them (its prompt, no consistency rule): a question with
    # claims to judge is what that preset is for, and its defaults must hold on easy claims too.
    "claims-truthfulqa": ("truthfulqa", ROOT / "data" / "sanity" / "claims_dev.jsonl", None, 40),
    "comparisons-truthfulqa": ("truthfulqa", ROOT / "data" / "comparisons" / "comparisons_dev.jsonl", None, 40),
    # The next 40 rows of each (NAME@START: the rows from START on): a second draw, so that a choice does not
    # rest on one slice's 20 pairs.
    "claims-truthfulqa@40": ("truthfulqa", ROOT / "data" / "sanity" / "claims_dev.jsonl", None, 40),
    "comparisons-truthfulqa@40": ("truthfulqa", ROOT / "data" / "comparisons" / "comparisons_dev.jsonl", None, 40),
    # The same rows with each question naming the false option first (false_option_first), under each preset.
    "comparisons" + FALSE_FIRST: ("claims", ROOT / "data" / "comparisons" / "comparisons_dev.jsonl", "key:answer", 40),
    "comparisons-truthfulqa" + FALSE_FIRST: ("truthfulqa", ROOT / "data" / "comparisons" / "comparisons_dev.jsonl",
                                           None, 40),
    "truthfulqa": ("truthfulqa", PAPER / "truthfulqa" / "praxis_subset_train.json", None, 40),
    "gsm8k": ("gsm8k", PAPER / "gsm8k" / "gsm8k_dev.json", None, 24),
    "alpaca": ("alpaca", PAPER / "alpaca" / "alpaca_dev.json", None, 24),
}
# (readout, context, centre, anchor): the search settings compared (the anchor's weight: ANCHOR_WEIGHT's, else 1).
# The long-text files run the verdict readout only: the split readout reads every token of a 200-token response
# through the vocabulary head.
CANDIDATES = {
    "split-folds-group": ("split", "other-folds", "group", "agreeing"),
    "split-folds-group-noanchor": ("split", "other-folds", "group", "none"),
    "split-folds-group-anchor2": ("split", "other-folds", "group", "agreeing"),
    "split-groups-batch": ("split", "other-groups", "batch", "none"),
    "verdict-folds-group": ("verdict", "other-folds", "group", "agreeing"),
    # The K seeds follow the likelihood anchor and it is a term of U from the start (not only once it agrees).
    "split-folds-group-likelihood": ("split", "other-folds", "group", "likelihood"),
    "verdict-folds-group-likelihood": ("verdict", "other-folds", "group", "likelihood"),
    # The likelihood seeds the search but is no term of U: does the readout then move off it where it is wrong?
    "split-folds-group-likelihood-seeds": ("split", "other-folds", "group", "likelihood"),
}
# Left out: the earlier default (split, other groups, batch calibration), whose every target has a context of
# its own: one seed took over 25 minutes on the sanity dev half here (issue 36 has its figures: 0.08-0.19).
PER_FILE = {
    "claims": ("split-folds-group", "split-folds-group-noanchor", "verdict-folds-group"),
    "comparisons": ("split-folds-group", "split-folds-group-noanchor"),
    "truthfulqa": ("split-folds-group",),
    "claims-truthfulqa": ("split-folds-group", "split-folds-group-likelihood"),
    "comparisons-truthfulqa": ("split-folds-group", "split-folds-group-likelihood"),
    "claims-truthfulqa@40": ("split-folds-group", "split-folds-group-likelihood"),
    "comparisons-truthfulqa@40": ("split-folds-group", "split-folds-group-likelihood"),
    "comparisons" + FALSE_FIRST: ("split-folds-group-likelihood",),
    "comparisons-truthfulqa" + FALSE_FIRST: ("split-folds-group-likelihood",),
    "gsm8k": ("verdict-folds-group",),
    "alpaca": ("verdict-folds-group",),
}
# Left out to keep the table within its two hours: the anchor at twice the weight after one seed
# (split-folds-group-anchor2 labeled the sanity dev half 0.40 with seed 0; its row stays in the results); the
# verdict readout beyond the sanity dev half (there 18 points below the split readout, at 3-4 times the
# time); on TruthfulQA, the search without the anchor.
ANCHOR_WEIGHT = {"split-folds-group-anchor2": 2.0, "split-folds-group-likelihood-seeds": 0.0}
ORIENTATIONS = ("auto", "likelihood", "zero-shot", "none")
BASELINES = ("zero-shot", "likelihood", "bootstrap", "gold-icl")


def _accuracy(labels: Sequence[bool | None], gold: Sequence[bool | None], scores=None) -> dict:
    m = label_metrics(list(labels), list(gold), scores)
    return {"accuracy": m["accuracy"], "n": m["n_compared"], "majority": m["majority_accuracy"],
            "ci": [m["ci_low"], m["ci_high"]], "auroc": m["auroc"], "warnings": m["warnings"]}


def load_file(name: str, likelihood_prefix: str | None = None) -> tuple[Task, LoadedData]:
    """A dev file's task and its rows as loaded (NAME@START: the rows from START on, whole groups; NAME ending
    in FALSE_FIRST: each question names its false option first); `likelihood_prefix`: the likelihood's
    prefix instead of the preset's."""
    preset, path, consistency, limit = FILES[name]
    task = get_task(preset, consistency=consistency, likelihood_prefix=likelihood_prefix)
    false_first = name.endswith(FALSE_FIRST)
    start = int(name.removesuffix(FALSE_FIRST).partition("@")[2] or 0)
    rows = read_rows(path)[start:] if start or false_first else None
    if false_first:
        rows = false_option_first(rows)
    return task, load_dataset(path, task, limit=limit, readout="split", rows=rows)


def false_option_first(rows: Sequence[dict]) -> list[dict]:
    """The comparisons with every question ("Which is larger, A or B?") naming its pair's false answer first: a
    set whose questions lean one way, as issue 36's held-out number comparisons may (the likelihood after the
    question follows the option it names first)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row["consistency_id"]), []).append(row)
    out = []
    for group in groups.values():
        true = next(r["answer"] for r in group if r["label"])
        false = next(r["answer"] for r in group if not r["label"])
        stem = re.fullmatch(r"(.*), .+ or .+\?", group[0]["question"]).group(1)
        out += [dict(row, question=f"{stem}, {false} or {true}?") for row in group]
    return out


def label_free_signals(task: Task, backend, examples: Sequence) -> dict[str, list[float]]:
    """The orientation's signals for a file's examples (never gold): `auto`'s two and its fallback."""
    return {"likelihood": likelihood_anchor(task, backend, examples),
            "zero-shot": zero_shot_values(task, backend, examples),
            FALLBACK: split_zero_shot_values(task, backend, examples)}


def baseline_config(readout: str) -> BaselineConfig:
    """The baselines' settings beside ICM: the candidate's readout over the other folds, calibrated in groups."""
    return BaselineConfig(readout=readout, context="other-folds", calibrate=True, centre="group")


def icm_config(candidate: str, seed: int, n_examples: int) -> ICMConfig:
    """A candidate's search settings for one seed, orientation off (every orientation is applied afterwards)."""
    readout, context, centre, anchor = CANDIDATES[candidate]
    return ICMConfig(readout=readout, context=context, calibrate=True, centre=centre, anchor=anchor,
                     anchor_weight=ANCHOR_WEIGHT.get(candidate, 1.0), orient="none", seed=seed,
                     **sized_to(n_examples)).validate()


def run_file(name: str, backend, seeds: Sequence[int], done: set[tuple] = frozenset(),
             only: Sequence[str] | None = None, likelihood_prefix: str | None = None) -> Iterator[dict]:
    """Every row of one dev file, but those `done` already holds (an earlier, interrupted `run --append`);
    `only`: these candidates instead of the file's own (PER_FILE); `likelihood_prefix`: the likelihood's
    prefix (anchor, baseline and orientation) instead of the preset's, recorded in each row."""
    preset = FILES[name][0]
    task, data = load_file(name, likelihood_prefix)
    examples, gold = data.examples, data.gold_list()
    rule = ConsistencyRule(examples, task.consistency)
    signals = label_free_signals(task, backend, examples)
    candidates = tuple(only) if only else PER_FILE[name]
    for readout in dict.fromkeys(CANDIDATES[c][0] for c in candidates):
        for method in BASELINES:
            if (name, method, readout, None, None) in done:
                continue
            t = time.monotonic()
            res = run_baseline(method, examples, task, backend, baseline_config(readout),
                               gold=gold if method == "gold-icl" else None)
            row = {"file": name, "preset": preset, "n": len(examples), "method": method, "readout": readout,
                   **_accuracy(res.labels, gold, res.scores), "seconds": round(time.monotonic() - t, 1),
                   "likelihood_prefix": task.likelihood_prefix}
            yield row
    for cand in candidates:
        readout, context, centre, anchor = CANDIDATES[cand]
        for seed in seeds:
            if (name, "icm", readout, cand, seed) in done:
                continue
            config = icm_config(cand, seed, len(examples))
            origin = backend.stats.copy()
            t = time.monotonic()
            search = ICMSearch(examples, task, backend, config)
            result = search.run()
            seconds = time.monotonic() - t
            stats = backend.stats.minus(origin)
            completed = set(search.state.completed)
            searched = [None if p in completed else y for p, y in enumerate(result.labels)]
            oriented = {}
            for choice in ORIENTATIONS:
                names = () if choice == "none" else (AUTO if choice == "auto" else (choice,))
                where = decide(result.labels, {s: signals[s] for s in names}, choice,
                               fallback=signals[FALLBACK] if choice == "auto" else None)
                labels, scores = (mirrored(rule, result.labels, result.scores) if where.flipped
                                  else (result.labels, result.scores))
                oriented[choice] = {**_accuracy(labels, gold, scores), "flipped": where.flipped,
                                    "decided": where.decided}
                if choice == "auto":
                    named = labels
            where = decide(result.labels, {s: signals[s] for s in AUTO}, "auto", fallback=signals[FALLBACK])
            partial = [(None if y is None else (not y if where.flipped else y)) for y in searched]
            row = {"file": name, "preset": preset, "n": len(examples), "method": "icm", "candidate": cand,
                   "readout": readout, "context": context, "centre": centre, "anchor": anchor, "seed": seed,
                   **oriented["auto"], "orientations": oriented,
                   "without_completion": _accuracy(partial, gold), "searched": len(examples) - len(completed),
                   "accepted": result.accepted, "rejected": result.rejected, "iterations": result.iterations,
                   "model_calls": stats.model_calls, "computed_tokens": stats.computed_tokens,
                   "seconds": round(seconds, 1), "dtype": getattr(backend, "dtype", None),
                   "likelihood_prefix": task.likelihood_prefix, "labels": result.labels, "oriented": named}
            yield row


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def summarize(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (file, candidate): the ICM seeds' accuracies under each orientation, without completion, the cost."""
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["method"] != "icm":
            continue
        s = out.setdefault((r["file"], r["candidate"]), {"seeds": [], "rows": []})
        s["rows"].append(r)
    for s in out.values():
        rs = s["rows"]
        s["by_orientation"] = {o: [x["orientations"][o]["accuracy"] for x in rs] for o in ORIENTATIONS}
        s["mean"] = _mean(s["by_orientation"]["auto"])
        s["worst"] = min(s["by_orientation"]["auto"])
        s["undecided"] = sum(not x["orientations"]["auto"]["decided"] for x in rs)
        s["without_completion"] = _mean([x["without_completion"]["accuracy"] for x in rs])
        s["searched"] = _mean([x["searched"] for x in rs])
        s["accept_rate"] = _mean([x["accepted"] / max(1, x["accepted"] + x["rejected"]) for x in rs])
        s["seconds"] = _mean([x["seconds"] for x in rs])
        # Over the labels as the default orientation named them (rows from before they were kept: the search's
        # labels turned over where it flipped them).
        named = [x.get("oriented") or [None if y is None else y != x["orientations"]["auto"]["flipped"]
                                       for y in x["labels"]] for x in rs]
        s["seeds_agree"] = consensus(named).agreement if len(rs) > 1 else None
    return out


def choose(rows: list[dict], min_seeds: int = 3) -> dict[str, str]:
    """Per preset: the candidate with the best mean ICM accuracy over its dev files (default orientation), the
    mean of its worst seeds breaking ties. Only candidates with `min_seeds` seeds on every dev file of the
    preset that ICM ran on compete (one left out after a seed, or not yet run on a file, does not)."""
    summary = summarize(rows)
    by_preset: dict[str, dict[str, list]] = {}
    files: dict[str, set[str]] = {}
    for (file, cand), s in summary.items():
        preset = FILES[file][0]
        files.setdefault(preset, set()).add(file)
        if len(s["rows"]) >= min_seeds:
            by_preset.setdefault(preset, {}).setdefault(cand, []).append((s["mean"], s["worst"]))
    complete = {p: {k: v for k, v in c.items() if len(v) == len(files[p])} for p, c in by_preset.items()}
    chosen = {p: max(c, key=lambda k: (_mean([m for m, _ in c[k]]), _mean([w for _, w in c[k]])))
              for p, c in complete.items() if c}
    if min_seeds > 1:  # a preset whose candidates all ran fewer seeds (cut for time): the best of those
        chosen = {**choose(rows, min_seeds=1), **chosen}
    return chosen


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def table(rows: list[dict]) -> str:
    summary = summarize(rows)
    chosen = choose(rows)
    base = {(r["file"], r["readout"], r["method"]): r for r in rows if r["method"] != "icm"}
    lines = ["| dev file (n) | candidate: readout, context, centre, anchor (weight) | ICM seeds (auto orientation) | "
             "mean | worst | undecided | seeds agree | likelihood / zero-shot / no orientation (means) | "
             "without completion | searched | accepted | s a seed | chosen |", "|---" * 13 + "|"]
    for (file, cand), s in summary.items():
        r0 = s["rows"][0]
        o = s["by_orientation"]
        pick = chosen.get(FILES[file][0]) == cand
        lines.append(
            f"| {file} ({r0['n']}) | {cand}: {', '.join(CANDIDATES[cand])} ({ANCHOR_WEIGHT.get(cand, 1.0):g}) | "
            f"{', '.join(_pct(a) for a in o['auto'])} | **{_pct(s['mean'])}** | {_pct(s['worst'])} | "
            f"{s['undecided']} of {len(s['rows'])} | {_pct(s['seeds_agree'])} | "
            f"{_pct(_mean(o['likelihood']))} / {_pct(_mean(o['zero-shot']))} / "
            f"{_pct(_mean(o['none']))} | {_pct(s['without_completion'])} | {s['searched']} | "
            f"{_pct(s['accept_rate'])}% | {s['seconds']} | {'**yes**' if pick else ''} |")
    lines += ["", "| dev file (n, majority) | ICM (chosen defaults, mean of seeds) | zero-shot | likelihood | "
              "bootstrap | golden ICL | best label-free |", "|---|---|---|---|---|---|---|"]
    for file in dict.fromkeys(r["file"] for r in rows):
        cand = chosen.get(FILES[file][0])
        if (file, cand) not in summary:
            continue
        readout = CANDIDATES[cand][0]
        b = {m: base.get((file, readout, m)) for m in BASELINES}
        best = max((b[m]["accuracy"] for m in ("zero-shot", "likelihood", "bootstrap") if b[m]), default=None)
        s = summary[(file, cand)]
        lines.append(f"| {file} ({s['rows'][0]['n']}, {_pct(s['rows'][0]['majority'])}) | **{_pct(s['mean'])}** "
                     f"({', '.join(_pct(a) for a in s['by_orientation']['auto'])}) | "
                     + " | ".join(_pct(b[m]["accuracy"]) if b[m] else "" for m in BASELINES) + f" | {_pct(best)} |")
    return "\n".join(lines)


def targets(rows: list[dict], file: str = "claims") -> str:
    """Issue 36's targets on the sanity dev half, under the chosen defaults, one line each."""
    cand = choose(rows).get(FILES[file][0])
    icm = [r for r in rows if r["method"] == "icm" and r["file"] == file and r["candidate"] == cand]
    if not icm:
        return f"no ICM runs on {file}"
    readout = CANDIDATES[cand][0]
    base = {r["method"]: r["accuracy"] for r in rows if r["method"] != "icm" and r["file"] == file
            and r["readout"] == readout}
    accs = [r["accuracy"] for r in icm]
    mean = statistics.fmean(accs)
    best = max(base[m] for m in ("zero-shot", "likelihood", "bootstrap"))
    checks = [
        ("every seed labels all", all(sum(y is not None for y in r["labels"]) == r["n"] for r in icm)),
        ("no seed below chance", all("below_chance" not in r["warnings"] for r in icm)),
        (f"mean {mean:.3f} >= zero-shot {base['zero-shot']:.3f} + 0.10", mean >= base["zero-shot"] + 0.10 - 1e-9),
        (f"mean {mean:.3f} within 0.05 of golden ICL {base['gold-icl']:.3f}", mean >= base["gold-icl"] - 0.05 - 1e-9),
        # (a mean of equal accuracies can land a rounding error below them)
        (f"mean {mean:.3f} >= the best label-free baseline {best:.3f}", mean >= best - 1e-9),
        (f"seconds a seed {max(r['seconds'] for r in icm):.0f} (search; under 240 with the model's load)",
         max(r["seconds"] for r in icm) < 240),
    ]
    return "\n".join(f"{'met' if ok else 'NOT met'}: {text}" for text, ok in checks)


def _paired(icm: Sequence[bool | None], other: Sequence[bool | None], gold: Sequence[bool | None]) -> str:
    """Where ICM and a baseline label an example differently: how often each is right, and the exact McNemar
    test of the two accuracies on the same examples (a difference of a few examples in 40 is not one)."""
    from statsmodels.stats.contingency_tables import mcnemar

    both = [(a == g, b == g) for a, b, g in zip(icm, other, gold, strict=True)
            if g is not None and a is not None and b is not None]
    only_icm = sum(a and not b for a, b in both)
    only_other = sum(b and not a for a, b in both)
    table = [[sum(a and b for a, b in both), only_icm], [only_other, sum(not a and not b for a, b in both)]]
    p = mcnemar(table, exact=True).pvalue if only_icm + only_other else 1.0
    return f"ICM alone right on {only_icm}, it alone on {only_other} (McNemar p={p:.2f})"


def beside_baselines(rows: list[dict], backend) -> str:
    """How far each ICM seed's labels (as named) are its label-free baselines' labels: where a baseline is also
    what seeds or names the search, ICM should add to it, not copy it (issue 36). Recomputes the baselines'
    labels (no gold) with the likelihood's prefix the seeds ran with, one line per file, prefix and candidate."""
    lines = []
    icm_rows = [r for r in rows if r["method"] == "icm"]
    runs = dict.fromkeys((r["file"], r.get("likelihood_prefix")) for r in icm_rows)
    for file, prefix in runs:
        task, data = load_file(file, prefix)
        gold = data.gold_list()
        icm = [r for r in icm_rows if r["file"] == file and r.get("likelihood_prefix") == prefix]
        # A file run under two prefixes gets a line for each, named.
        label = file if sum(f == file for f, _ in runs) == 1 else f"{file} (likelihood after {prefix!r})"
        for readout in dict.fromkeys(r["readout"] for r in icm):
            base = {m: run_baseline(m, data.examples, task, backend, baseline_config(readout)).labels
                    for m in ("likelihood", "zero-shot", "bootstrap")}
            for cand in dict.fromkeys(r["candidate"] for r in icm if r["readout"] == readout):
                parts = []
                for r in (x for x in icm if x["candidate"] == cand):
                    named = r["oriented"]
                    same = {m: statistics.fmean(a == b for a, b in zip(named, b_labels, strict=True))
                            for m, b_labels in base.items()}
                    paired = "; ".join(f"vs {m}: {_paired(named, b_labels, gold)}" for m, b_labels in base.items())
                    parts.append(f"seed {r['seed']}: same as likelihood {100 * same['likelihood']:.0f}%, as zero-shot "
                                 f"{100 * same['zero-shot']:.0f}%, as bootstrap {100 * same['bootstrap']:.0f}%; "
                                 f"{paired}")
                lines.append(f"{label} / {cand}: " + "; ".join(parts))
    return "\n".join(lines)


def under_current_rule(row: dict) -> dict:
    """A row as the orientation rule names it now. Rows before 2026-12-07 (third session) turned the labels
    over on an undecided signal too; now an undecided naming keeps the search's own (orientation.decide). That
    is derivable without the signals: an undecided flip becomes the `none` orientation, the search's labels."""
    if row.get("method") != "icm":
        return row
    fixed = {k: (dict(row["orientations"]["none"], decided=False) if v["flipped"] and not v["decided"] else v)
             for k, v in row["orientations"].items()}
    if fixed["auto"] is row["orientations"]["auto"]:
        return row
    return {**row, **fixed["auto"], "orientations": fixed, "oriented": row["labels"]}


def _rows(path: Path) -> list[dict]:
    return [under_current_rule(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--files", default=",".join(FILES))
    run.add_argument("--seeds", default="0,1,2")
    run.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"),
                     help="the model's precision (auto: bfloat16 where the CPU has it); a candidate whose outcome "
                          "turns on rounding is not robust")
    run.add_argument("--candidates", default=None,
                     help="comma-separated candidates to run on every file, instead of each file's own")
    run.add_argument("--likelihood-prefix", default=None,
                     help="the likelihood's prefix (anchor, baseline, orientation) instead of each preset's")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--append", action="store_true",
                     help="add to --out instead of replacing it, skipping the runs it already holds")
    show = sub.add_parser("table")
    show.add_argument("results", type=Path)
    beside = sub.add_parser("beside", help="how far each ICM seed's labels are its label-free baselines' (runs "
                                           "the baselines again)")
    beside.add_argument("results", type=Path)
    beside.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"))
    args = ap.parse_args()
    if args.command == "beside":
        rows = _rows(args.results)
        print(beside_baselines(rows, get_backend("transformers", dtype=args.dtype)))
        return
    if args.command == "table":
        rows = _rows(args.results)
        print(table(rows))
        print()
        print(targets(rows))
        print(json.dumps({"chosen": choose(rows)}))
        return
    backend = get_backend("transformers", dtype=args.dtype)
    seeds = [int(s) for s in args.seeds.split(",")]
    done = set()
    if args.append and args.out.exists():
        done = {(r["file"], r["method"], r["readout"], r.get("candidate"), r.get("seed"))
                for r in map(json.loads, args.out.read_text().splitlines())}
    with args.out.open("a" if args.append else "w") as f:
        for name in args.files.split(","):
            only = args.candidates.split(",") if args.candidates else None
            for row in run_file(name, backend, seeds, done, only, args.likelihood_prefix):
                print(json.dumps({k: v for k, v in row.items() if k not in ("labels", "oriented", "orientations")}),
                      flush=True)
                f.write(json.dumps(row) + "\n")
                f.flush()


if __name__ == "__main__":
    main()
