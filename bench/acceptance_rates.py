"""What normalizing mutual predictability does to the search under each readout: its acceptance rate, how
many examples it labels itself, the spread it measures U in, and the accuracy it ends with.

    python bench/acceptance_rates.py [--seeds 0,1] [--out bench/results/acceptance_rates.jsonl]

On the sanity set's dev half (40 claims), each readout (verdict, split, channel) with the other folds as
context and calibration within groups, once with P in nats (the official code's U) and once in the
readout's own spread (--normalize), everything else the defaults. Acceptance rate: accepted proposals over
proposals that changed a label (a proposal of the label an example already has costs nothing and decides
nothing).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from choose_defaults import FILES

from icm_engine.backends import get_backend
from icm_engine.metrics import label_metrics
from icm_engine.presets import get_task, load_dataset
from icm_engine.scoring import spread
from icm_engine.search import ICMConfig, ICMSearch, sized_to

READOUTS = ("verdict", "split", "channel")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    preset, path, consistency, limit = FILES["claims"]
    task = get_task(preset, consistency=consistency)
    backend = get_backend("transformers")
    rows = []
    for readout in READOUTS:
        data = load_dataset(path, task, limit=limit, readout=readout)
        for normalize in (False, True):
            for seed in (int(s) for s in args.seeds.split(",")):
                config = ICMConfig(readout=readout, context="other-folds", calibrate=True, centre="group",
                                   normalize=normalize, seed=seed, **sized_to(len(data.examples))).validate()
                t = time.monotonic()
                result = ICMSearch(data.examples, task, backend, config).run()
                m = label_metrics(result.labels, data.gold_list(), result.scores)
                # How far the readout's final calibrated log-odds spread, in nats: what a unit of P is worth.
                row = {"readout": readout, "normalize": normalize, "seed": seed,
                       "spread": round(spread(result.scores), 3),
                       "accepted": result.accepted, "rejected": result.rejected,
                       "acceptance": round(result.accepted / max(1, result.accepted + result.rejected), 3),
                       "searched": len(data.examples) - result.completed, "n": len(data.examples),
                       "accuracy": m["accuracy"], "seconds": round(time.monotonic() - t, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print("\n| readout | U's unit | final spread (nats) | acceptance | labeled by the search | accuracy |")
    print("|---|---|---|---|---|---|")
    for readout in READOUTS:
        for normalize in (False, True):
            rs = [r for r in rows if r["readout"] == readout and r["normalize"] == normalize]
            spreads = ", ".join(str(r["spread"]) for r in rs)
            rates = ", ".join(f"{r['acceptance']:.0%}" for r in rs)
            searched = ", ".join(str(r["searched"]) for r in rs)
            accuracy = ", ".join(f"{r['accuracy']:.3f}" for r in rs)
            print(f"| {readout} | {'spread' if normalize else 'nats'} | {spreads} | {rates} | "
                  f"{searched} of {rs[0]['n']} | {accuracy} |")


if __name__ == "__main__":
    main()
