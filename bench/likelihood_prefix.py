"""The likelihood signal after the question against after the claim alone: its agreement with gold (r = 2 AUROC
- 1, Mann-Whitney p) on each dev file, and on the whole comparisons file its agreement with which option the
question names first. Gold only judges; development files only (choose_defaults.FILES).

    python bench/likelihood_prefix.py > bench/results/likelihood_prefix.txt
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from choose_defaults import FALSE_FIRST, ROOT, load_file

from icm_engine.anchor import likelihood_anchor
from icm_engine.backends import get_backend
from icm_engine.examples import read_rows
from icm_engine.orientation import agreement
from icm_engine.presets import get_task, load_dataset

PREFIXES = {"question": "Question: {question}\nAnswer:", "claim": "Claim:"}
FILES = ("claims", "claims-truthfulqa@40", "comparisons", "comparisons-truthfulqa@40", "truthfulqa",
         "comparisons-truthfulqa" + FALSE_FIRST)


def _named_first(fields: dict) -> bool:
    """Whether the question names this claim's answer before the other option ("Which is X, A or B?")."""
    question, answer = fields["question"].lower(), fields["answer"].lower()
    return question.find(answer) < question.rfind(" or ")


def _r(values, labels) -> str:
    a = agreement(values, labels)
    return f"r={a.r:+.2f} (p={a.p:.3f})"


def main() -> None:
    backend = get_backend("transformers")
    for name in FILES:
        task, data = load_file(name)
        values = {k: likelihood_anchor(replace(task, likelihood_prefix=p), backend, data.examples)
                  for k, p in PREFIXES.items()}
        both = list(sum(np.asarray(v) / np.std(v) for v in values.values()))
        gold = data.gold_list()
        print(f"{name} (n={len(data.examples)}), against gold: "
              + "; ".join(f"{k} {_r(v, gold)}" for k, v in {**values, "sum": both}.items()))
    path = ROOT / "data" / "comparisons" / "comparisons_dev.jsonl"
    task = get_task("truthfulqa")
    data = load_dataset(path, task, readout="split", rows=read_rows(path))
    gold = data.gold_list()
    first = [_named_first(ex.fields) for ex in data.examples]
    numbers = [i for i, ex in enumerate(data.examples) if ex.fields["category"] == "number"]
    for k, p in PREFIXES.items():
        v = likelihood_anchor(replace(task, likelihood_prefix=p), backend, data.examples)
        print(f"comparisons, all {len(v)} rows, {k}: against gold {_r(v, gold)}, on the number "
              f"comparisons {_r([v[i] for i in numbers], [gold[i] for i in numbers])}; "
              f"against the option named first {_r(v, first)}")


if __name__ == "__main__":
    main()
