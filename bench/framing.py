"""Compare prompt framings and readouts on a dev file: zero-shot vs random vs golden in-context labels.

Usage: python bench/framing.py data/sanity/claims_dev.jsonl [--limit 60]
Prints AUROC and accuracy of each (framing, method); used to choose the sanity set's framing on dev only.
"""

from __future__ import annotations

import argparse
import json
import time

from icm_engine.backends import get_backend
from icm_engine.baselines import BaselineConfig, run_baseline
from icm_engine.metrics import label_metrics
from icm_engine.presets import get_task, load_dataset

FRAMINGS = {
    "paper-qa": dict(template="Question: {question}\nClaim: {choice}\nI think this claim is"),
    "is-true-q": dict(template="Question: Is the following claim true?\nClaim: {choice}\nI think this claim is"),
    "claim-only": dict(template="Claim: {choice}\nThis claim is"),
    "statement-lc": dict(template="{choice} This statement is", label_words=(" true", " false")),
    "channel-claim": dict(channel_prefix="{verbalizer} claim:", channel_target=" {choice}", readout="channel"),
    "split-claim": dict(channel_target=" {choice}", readout="split"),
    "channel-qa": dict(channel_prefix="Question: {question}\n{verbalizer} answer:", channel_target=" {choice}",
                       readout="channel"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--framings", default=",".join(FRAMINGS))
    ap.add_argument("--methods", default="zero-shot,random-icl,gold-icl")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--context", default="all")
    args = ap.parse_args()
    backend = get_backend("transformers")
    for name in args.framings.split(","):
        spec = dict(FRAMINGS[name])
        readout = spec.pop("readout", "verdict")
        task = get_task("claims", consistency="key:answer", **spec)
        data = load_dataset(args.input, task, limit=args.limit)
        gold = data.gold_list()
        for method in args.methods.split(","):
            for seed in range(args.seeds if method == "random-icl" else 1):
                t = time.monotonic()
                res = run_baseline(method, data.examples, task, backend,
                                   BaselineConfig(readout=readout, context=args.context), gold=gold, seed=seed)
                m = label_metrics(res.labels, gold, res.scores)
                print(json.dumps({"framing": name, "context": args.context, "method": method, "seed": seed,
                                  "acc": round(m["accuracy"], 3),
                                  "auroc": round(m["auroc"], 3), "true_rate": round(m["predicted_true_rate"], 2),
                                  "tokens": res.stats.computed_tokens, "s": round(time.monotonic() - t, 1)}),
                      flush=True)


if __name__ == "__main__":
    main()
