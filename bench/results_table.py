"""Run zero-shot, random-ICL, bootstrap, ICM and golden-ICL on the same model and slices; print a table.

Usage:
    python bench/results_table.py --suite sanity --out bench/results/sanity.json
    python bench/results_table.py --suite paper --out bench/results/paper.json

Every figure in docs/results.md comes from this script; rerun it to check them. All methods use
batch calibration (`--calibrate`), so no method is penalised for a readout's shared bias.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from icm_engine.backends import get_backend
from icm_engine.baselines import BaselineConfig, run_baseline
from icm_engine.metrics import label_metrics
from icm_engine.presets import get_task, load_dataset
from icm_engine.search import ICMConfig, ICMSearch

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "data" / "paper"  # slices of the paper's released files (data/paper/README.md)

SUITES = {
    "sanity": [
        dict(name="sanity test (split, other groups)", path=ROOT / "data/sanity/claims_test.jsonl", task="claims",
             consistency="key:answer", readout="split", context="other-groups", limit=16, iterations=48),
        dict(name="sanity test (verdict, paper prompt)", path=ROOT / "data/sanity/claims_test.jsonl",
             task="claims", consistency="key:answer", readout="verdict", context="all", limit=12, iterations=24),
    ],
    "paper": [
        dict(name="TruthfulQA praxis train (verdict)", path=PAPER / "truthfulqa/praxis_subset_train.json",
             task="truthfulqa", readout="verdict", context="all", limit=12, iterations=24),
        dict(name="GSM8K dev (verdict)", path=PAPER / "gsm8k/gsm8k_dev.json", task="gsm8k", readout="verdict",
             context="all", limit=8, iterations=16),
        dict(name="Alpaca dev (verdict)", path=PAPER / "alpaca/alpaca_dev.json", task="alpaca", readout="verdict",
             context="all", limit=4, iterations=8),
    ],
}
METHODS = ("zero-shot", "random-icl", "bootstrap", "icm", "gold-icl")


def run_one(spec: dict, backend, seed: int, methods) -> list[dict]:
    task = get_task(spec["task"], consistency=spec.get("consistency"))
    data = load_dataset(spec["path"], task, limit=spec["limit"], readout=spec["readout"])
    gold = data.gold_list()
    rows = []
    for method in methods:
        t0 = time.monotonic()
        if method == "icm":
            cfg = ICMConfig(iterations=spec["iterations"], readout=spec["readout"], context=spec["context"],
                            calibrate=True, seed=seed)
            res = ICMSearch(data.examples, task, backend, cfg).run()
        else:
            config = BaselineConfig(readout=spec["readout"], context=spec["context"], calibrate=True)
            res = run_baseline(method, data.examples, task, backend, config, gold=gold, seed=seed)
        m = label_metrics(res.labels, gold, res.scores)
        row = {"dataset": spec["name"], "n": len(data.examples), "method": method, "seed": seed,
               "accuracy": m["accuracy"], "auroc": m["auroc"], "labeled": m["n_compared"],
               "model_calls": res.stats.model_calls, "prompt_tokens": res.stats.prompt_tokens,
               "computed_tokens": res.stats.computed_tokens, "wall_s": round(time.monotonic() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", choices=sorted(SUITES), required=True)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--only", help="run only datasets whose name contains this")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    backend = get_backend("transformers")
    rows = []
    for spec in SUITES[args.suite]:
        if args.only and args.only not in spec["name"]:
            continue
        for seed in range(args.seeds):
            rows.extend(run_one(spec, backend, seed, args.methods.split(",")))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"backend": backend.describe(), "rows": rows}, indent=1) + "\n")
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    lines = ["| dataset | n | method | accuracy | AUROC | labeled | model calls | computed tokens | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = "—" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}"
        auc = "—" if r["auroc"] is None else f"{r['auroc']:.2f}"
        lines.append(f"| {r['dataset']} | {r['n']} | {r['method']} | {acc} | {auc} | {r['labeled']} | "
                     f"{r['model_calls']} | {r['computed_tokens']} | {r['wall_s']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
