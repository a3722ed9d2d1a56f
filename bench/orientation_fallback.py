"""How `auto`'s fallback (orientation.FALLBACK, the split readout's zero-shot) names searches already run: every
distinct ICM search stored in `bench/choose_defaults.py` result files (its labels before orientation), named
by the two signals alone and then with the fallback (which decides where they cannot, and may veto where they
decide); accuracy against gold, which
only judges. Development files only (choose_defaults.FILES).

    python bench/orientation_fallback.py bench/results/defaults_amx_truthfulqa_preset.jsonl [more files]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from choose_defaults import FILES, label_free_signals, load_file

from icm_engine.backends import get_backend
from icm_engine.consistency import ConsistencyRule
from icm_engine.orientation import AUTO, FALLBACK, agreement, decide
from icm_engine.search.completion import mirrored


def _accuracy(rule: ConsistencyRule, labels: list, gold: list, flip: bool) -> float:
    named = mirrored(rule, labels, [0.0] * len(labels))[0] if flip else labels
    return statistics.fmean(a == g for a, g in zip(named, gold, strict=True))


def main(paths: list[str]) -> None:
    backend = get_backend("transformers")
    signals: dict[str, tuple] = {}
    seen: set[tuple] = set()
    before, after = [], []
    for row in (json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()):
        if row["method"] != "icm" or row["file"] not in FILES or (row["file"], tuple(row["labels"])) in seen:
            continue
        seen.add((row["file"], tuple(row["labels"])))
        name = row["file"]
        if name not in signals:
            task, data = load_file(name)
            values = label_free_signals(task, backend, data.examples)
            signals[name] = (ConsistencyRule(data.examples, task.consistency), values, data.gold_list())
            with_gold = {s: agreement(v, data.gold_list()) for s, v in values.items()}
            print(f"{name}: each signal's r with gold: " + ", ".join(
                f"{s} {a.r:+.2f} (p {a.p:.3f})" for s, a in with_gold.items()), flush=True)
        rule, values, gold = signals[name]
        labels = row["labels"]
        two = decide(labels, {s: values[s] for s in AUTO}, "auto")
        full = decide(labels, {s: values[s] for s in AUTO}, "auto", fallback=values[FALLBACK])
        before.append(_accuracy(rule, labels, gold, two.flipped))
        after.append(_accuracy(rule, labels, gold, full.flipped))
        print(f"  {row.get('candidate')} seed {row['seed']}: two signals {before[-1]:.3f} "
              f"({'decided' if two.decided else 'undecided'}), with the fallback {after[-1]:.3f} "
              f"({'decided' if full.decided else 'undecided'}{', turned over' if full.flipped != two.flipped else ''}"
              f"{', vetoed' if two.decided and not full.decided else ''})", flush=True)
    print(f"{len(before)} searches: mean accuracy {statistics.fmean(before):.4f} with the two signals, "
          f"{statistics.fmean(after):.4f} with the fallback")


if __name__ == "__main__":
    main(sys.argv[1:])
