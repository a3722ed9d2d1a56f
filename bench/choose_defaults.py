"""Choose each task preset's default readout, context and calibration for the packaged model, on
development data only (the paper's train/dev files and the sanity set's dev half; never ../shared/data/eval).

Usage: python bench/choose_defaults.py [--presets truthfulqa,gsm8k,alpaca,claims] [--out FILE.jsonl]

For every preset and candidate (readout, context) it runs zero-shot, random-label ICL (seed 0) and
golden-label ICL once, uncalibrated, and derives the calibrated figures from the same scores (calibration
subtracts the batch's mean score: AUROC is unchanged, labels and accuracy are not). One JSON line per
(preset, readout, context, method, calibrate). ICM searches for the labels the model finds most mutually
predictable, so a readout under which golden labels in context predict the held-out label well (and better
than random labels do) is one under which gold can win the search: `choose()` ranks candidates by golden-ICL
AUROC (threshold-free, so the least noisy on few examples), then its calibrated accuracy. docs/defaults.md holds
the table this printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from icm_engine.backends import get_backend
from icm_engine.baselines import BaselineConfig, run_baseline
from icm_engine.metrics import gold_comparison
from icm_engine.presets import get_task, load_dataset

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
# Development files only, and how many rows of each (whole groups): small, as each pass on 2 CPU cores costs
# minutes on the long GSM8K solutions.
DEV = {
    "truthfulqa": (SHARED / "truthfulqa" / "praxis_subset_train.json", 96),
    "gsm8k": (SHARED / "gsm8k" / "gsm8k_dev.json", 24),
    "alpaca": (SHARED / "alpaca" / "alpaca_dev.json", 24),
    "claims": (ROOT / "data" / "sanity" / "claims_dev.jsonl", 64),
}
CANDIDATES = (("verdict", "all"), ("verdict", "other-groups"), ("split", "other-groups"), ("channel", "other-groups"))
METHODS = ("zero-shot", "random-icl", "gold-icl")


def rows(preset: str, backend) -> list[dict]:
    path, limit = DEV[preset]
    task = get_task(preset)
    out = []
    for readout, context in CANDIDATES:
        data = load_dataset(path, task, limit=limit, readout=readout)
        gold = data.gold_list()
        for method in METHODS:
            t = time.monotonic()
            res = run_baseline(method, data.examples, task, backend,
                               BaselineConfig(readout=readout, context=context), gold=gold, seed=0)
            seconds = round(time.monotonic() - t, 1)
            mean = sum(res.scores) / len(res.scores)
            for calibrate in (False, True):
                scores = [s - mean for s in res.scores] if calibrate else list(res.scores)
                c = gold_comparison([s > 0 for s in scores], gold, scores)
                row = {"preset": preset, "file": path.name, "readout": readout, "context": context,
                       "method": method, "calibrate": calibrate, "n": c["n"], "accuracy": round(c["accuracy"], 3),
                       "ci": [round(c["ci_low"], 3), round(c["ci_high"], 3)],
                       "majority_accuracy": round(c["majority_accuracy"], 3), "balance": round(c["balance"], 3),
                       "auroc": None if c["auroc"] is None else round(c["auroc"], 3), "warnings": c["warnings"],
                       "computed_tokens": res.stats.computed_tokens, "seconds": seconds}
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def choose(results: list[dict]) -> dict[str, dict]:
    """Per preset: the candidate whose golden-ICL AUROC is highest (calibrated accuracy breaks ties)."""
    best: dict[str, dict] = {}
    for r in results:
        if r["method"] != "gold-icl" or not r["calibrate"]:
            continue
        def key(row: dict) -> tuple[float, float]:
            return row["auroc"] or 0.0, row["accuracy"]

        if r["preset"] not in best or key(r) > key(best[r["preset"]]):
            best[r["preset"]] = r
    return {p: {"readout": r["readout"], "context": r["context"], "calibrate": True} for p, r in best.items()}


def table(results: list[dict]) -> str:
    """The markdown table docs/defaults.md holds: per preset and candidate, AUROC and calibrated accuracy of
    each method, golden ICL's balance, and the candidate chosen."""
    chosen = choose(results)
    by = {(r["preset"], r["readout"], r["context"], r["method"], r["calibrate"]): r for r in results}
    lines = ["| preset (dev file, n) | readout | context | zero-shot AUROC | random ICL AUROC | golden ICL AUROC | "
             "golden ICL accuracy (95% CI), calibrated | uncalibrated | majority | chosen |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for preset in dict.fromkeys(r["preset"] for r in results):
        for readout, context in CANDIDATES:
            if (preset, readout, context, "gold-icl", True) not in by:
                continue
            zs, rnd, gold = (by[(preset, readout, context, m, True)] for m in METHODS)
            raw = by[(preset, readout, context, "gold-icl", False)]
            pick = chosen[preset]["readout"] == readout and chosen[preset]["context"] == context
            lines.append(f"| {preset} ({gold['file']}, {gold['n']}) | {readout} | {context} | {zs['auroc']} | "
                         f"{rnd['auroc']} | {gold['auroc']} | {gold['accuracy']} ({gold['ci'][0]}-{gold['ci'][1]}) | "
                         f"{raw['accuracy']} ({', '.join(raw['warnings']) or 'no warning'}) | "
                         f"{gold['majority_accuracy']} | {'**yes**' if pick else ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(DEV))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--append", action="store_true", help="add to --out instead of replacing it")
    ap.add_argument("--table", type=Path, help="print the markdown table of an earlier --out file; run nothing")
    args = ap.parse_args()
    if args.table:
        results = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        print(table(results))
        print(json.dumps({"chosen": choose(results)}))
        return
    backend = get_backend("transformers")
    results = [r for p in args.presets.split(",") for r in rows(p, backend)]
    if args.out:
        with args.out.open("a" if args.append else "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
    print(json.dumps({"chosen": choose(results)}), file=sys.stderr)


if __name__ == "__main__":
    main()
