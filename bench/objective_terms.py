"""P (mutual predictability) and A (the likelihood anchor's mean signed by the labels) of a few label sets.

For gold, gold flipped, the anchor's own labels and three random labelings with one True per group, on the
first N examples of a claims file (split readout, other groups as context, calibrated, as the sanity runs).
Reads gold only to build those label sets and report their accuracy: a diagnostic of the objective, never
part of a search. Usage: python bench/objective_terms.py data/sanity/claims_dev.jsonl 40
"""

from __future__ import annotations

import json
import sys

import numpy as np

from icm_engine.anchor import likelihood_anchor
from icm_engine.backends import get_backend
from icm_engine.consistency import ConsistencyRule
from icm_engine.presets import get_task, load_dataset
from icm_engine.scoring import Scorer, signed_mean


def main(path: str, limit: int) -> None:
    task = get_task("claims", consistency="key:answer")
    data = load_dataset(path, task, limit=limit, readout="split", anchor=True)
    examples, gold = data.examples, data.gold_list()
    backend = get_backend("transformers", None)
    scorer = Scorer(task, backend, examples, readout="split", context_policy="other-groups")
    anchor = likelihood_anchor(task, backend, examples)
    rule = ConsistencyRule(examples, task.consistency)

    def terms(labels: list[bool]) -> dict[str, float]:
        scores = [float(s) for s in scorer.loo(labels, list(range(len(labels))))]
        return {"P": round(signed_mean(labels, scores, True), 3), "A": round(signed_mean(labels, anchor), 3),
                "conflicts": rule.count(labels),
                "accuracy": round(float(np.mean([y == g for y, g in zip(labels, gold, strict=True)])), 3)}

    sets = {"gold": gold, "gold flipped": [not g for g in gold], "anchor": [a > 0 for a in anchor]}
    groups: dict[str, list[int]] = {}
    for p, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append(p)
    rng = np.random.default_rng(0)
    for k in range(3):
        labels = [False] * len(examples)
        for members in groups.values():
            labels[int(rng.choice(members))] = True
        sets[f"random {k}"] = labels
    for name, labels in sets.items():
        print(json.dumps({"labels": name, **terms(labels)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
