"""How far each label-free orientation signal follows gold on the development files: which signal can name
ICM's two classes, and on which kind of data it names them backwards.

    python bench/orientation_signals.py [--out bench/results/orientation_signals.jsonl]

For every dev file (bench/choose_defaults.py's, at most 140 rows) and signal variant: the agreement of the
signal's values with gold (r = 2 AUROC - 1 and the Mann-Whitney p-value, orientation.agreement). Gold is read
only here, to judge the signals; the product's orientation never reads it. Variants: the claim likelihood
summed, per token and per character; the zero-shot verdict with the task's label words alone and pooled with
their lower-case forms; the verdict signal (the label words' meaning in context, with gold's labeling).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from choose_defaults import FILES

from icm_engine.anchor import centre_by_group
from icm_engine.backends import get_backend
from icm_engine.orientation import agreement, verdict_values, zero_shot_values
from icm_engine.presets import get_task, load_dataset

LIMIT = 140


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    backend = get_backend("transformers")
    rows = []
    for name, (preset, path, consistency, _) in FILES.items():
        task = get_task(preset, consistency=consistency)
        data = load_dataset(path, task, limit=LIMIT if name in ("claims", "comparisons") else 40, anchor=True)
        gold, examples = data.gold_list(), data.examples
        groups = [ex.group for ex in examples]
        prefixes, targets = zip(*(task.render_likelihood(ex) for ex in examples), strict=True)
        raw = np.asarray(backend.continuation_logprobs(list(prefixes), list(targets)), dtype=float)
        tokens = np.array([len(backend.encode_pair(p, t)[0]) - backend.encode_pair(p, t)[1]
                           for p, t in zip(prefixes, targets, strict=True)], dtype=float)
        chars = np.array([len(t.strip()) for t in targets], dtype=float)
        exact = backend.label_logprobs([task.render(ex) for ex in examples], list(task.label_words))
        values = {
            "likelihood (sum)": centre_by_group(list(raw), groups),
            "likelihood (per token)": centre_by_group(list(raw / tokens), groups),
            "likelihood (per character: the product's)": centre_by_group(list(raw / chars), groups),
            "zero-shot (the task's label words)": list(exact[:, 0] - exact[:, 1]),
            "zero-shot (pooled with lower case: the product's)": zero_shot_values(task, backend, examples),
            "verdict (gold's labeling in context)": verdict_values(task, backend, examples, gold),
        }
        for signal, v in values.items():
            a = agreement(v, gold)
            row = {"file": name, "n": len(gold), "signal": signal, "r": round(a.r, 3), "p": float(f"{a.p:.2g}")}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = list(dict.fromkeys(r["file"] for r in rows))
    print("\n| signal | " + " | ".join(f"{f} ({next(r['n'] for r in rows if r['file'] == f)})" for f in files) + " |")
    print("|---|" + "---|" * len(files))
    for signal in dict.fromkeys(r["signal"] for r in rows):
        cells = {r["file"]: r for r in rows if r["signal"] == signal}
        print(f"| {signal} | " + " | ".join(f"{cells[f]['r']:+.2f} (p {cells[f]['p']:.2g})" for f in files) + " |")


if __name__ == "__main__":
    main()
