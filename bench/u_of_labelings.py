"""Does U rank whole labelings by accuracy? U of each ICM seed's labeling against the label-free baselines'.

For each ICM row of a `choose_defaults.py` results file, the search is set up again as that seed's run began
(the same preset, candidate, seed and likelihood prefix: its K seed labels, its unit of P, its anchor), and U
is evaluated for the seed's own labeling (completed, before orientation), each label-free baseline's labeling
(zero-shot, likelihood, bootstrap) and, as a diagnostic only, gold and gold's mirror image. Gold is read to
report accuracy and never enters a search. A labeling a baseline found with a higher U than the search's end
says the search stopped short of the objective it maximizes.

Usage: python bench/u_of_labelings.py RESULTS.jsonl [--files F,...] [--seeds 0,1,2] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from choose_defaults import CANDIDATES, baseline_config, icm_config, load_file

from icm_engine.backends import get_backend
from icm_engine.baselines import run_baseline
from icm_engine.search import ICMSearch

LABEL_FREE = ("zero-shot", "likelihood", "bootstrap")


def u_of(search: ICMSearch, labels: list[bool]) -> tuple[float, int]:
    """U of a whole labeling, as `search` measures it now, and its conflicts."""
    u, _, conflicts = search.evaluate(list(labels))
    return u, conflicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--files", default=None)
    ap.add_argument("--seeds", default=None)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["method"] == "icm" and "labels" in r
            and (args.files is None or r["file"] in args.files.split(","))
            and (args.seeds is None or str(r["seed"]) in args.seeds.split(","))]
    backend = get_backend("transformers", dtype=args.dtype)
    loaded: dict[tuple, tuple] = {}
    baselines: dict[tuple, dict[str, list[bool]]] = {}
    for row in rows:
        prefix = row.get("likelihood_prefix")
        if (row["file"], prefix) not in loaded:
            loaded[row["file"], prefix] = load_file(row["file"], prefix)
        task, data = loaded[row["file"], prefix]
        examples, gold = data.examples, data.gold_list()
        readout, _, _, anchor = CANDIDATES[row["candidate"]]
        key = (row["file"], readout, prefix)
        if key not in baselines:
            baselines[key] = {m: list(run_baseline(m, examples, task, backend, baseline_config(readout)).labels)
                              for m in LABEL_FREE}
        config = icm_config(row["candidate"], row["seed"], len(examples))
        search = ICMSearch(examples, task, backend, config)
        search.setup_batch()
        search.rng.seed(f"{config.seed}:0")
        search.init_batch()
        if anchor == "agreeing":
            # Its weight as the seed's run set it a third of the way through: against its final labels here.
            search.state.labels = [bool(y) for y in row["labels"]]
            search._check_anchor()
        sets = {"icm": [bool(y) for y in row["labels"]], **baselines[key],
                "gold": list(gold), "gold mirrored": [not g for g in gold]}
        out = {}
        for name, labels in sets.items():
            u, conflicts = u_of(search, labels)
            acc = sum(y == g for y, g in zip(labels, gold, strict=True)) / len(gold)
            out[name] = {"U": round(u, 2), "conflicts": conflicts, "accuracy": round(acc, 3)}
        best = max((n for n in sets if not n.startswith("gold")), key=lambda n: out[n]["U"])
        print(json.dumps({"file": row["file"], "candidate": row["candidate"], "seed": row["seed"],
                          "likelihood_prefix": prefix, "highest_label_free_U": best, **out}), flush=True)


if __name__ == "__main__":
    main()
