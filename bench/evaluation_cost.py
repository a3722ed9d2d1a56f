"""What one U evaluation costs under each context, and what the continuation path's sharing saves: the split
readout over the sanity dev half's first 40 claims, every label gold's, then five single-label flips.

    python bench/evaluation_cost.py

For each context (other groups; other folds, 2 and 4) and each way of running continuations (shared: contexts
stored once and continuations in wide passes, the default; unshared: padded batches, every token computed):
seconds, computed tokens and forward passes of the first evaluation, and their means over the five flips
(each flip's evaluation resumes from what the one before it stored). Wall times depend on the machine; the
tokens and passes do not.
"""

from __future__ import annotations

import random
import statistics
import time

from choose_defaults import FILES

from icm_engine.backends import get_backend
from icm_engine.backends.hf import TransformersBackend, prefix_sharing
from icm_engine.presets import get_task, load_dataset
from icm_engine.scoring import ScoreCache, Scorer

CONTEXTS = (("other-groups", 4), ("other-folds", 2), ("other-folds", 4))


def main() -> None:
    preset, path, consistency, limit = FILES["claims"]
    task = get_task(preset, consistency=consistency)
    data = load_dataset(path, task, limit=limit, readout="split")
    gold = data.gold_list()
    passes = [0]
    forward, extend = prefix_sharing.PrefixSharer.forward, prefix_sharing.PrefixSharer.extend

    def counted(method):
        def run(*args, **kwargs):
            passes[0] += 1
            return method(*args, **kwargs)
        return run

    prefix_sharing.PrefixSharer.forward = counted(forward)
    prefix_sharing.PrefixSharer.extend = counted(extend)
    TransformersBackend._hidden = counted(TransformersBackend._hidden)  # a padded batch's pass
    print("| context | continuations | first evaluation: s, computed tokens, passes | a flip's (mean of 5) |")
    print("|---|---|---|---|")
    for share in (True, False):
        backend = get_backend("transformers", share_continuations=share)
        for context, folds in CONTEXTS:
            backend.reset_prefix_cache()
            scorer = Scorer(task, backend, data.examples, readout="split", context_policy=context, folds=folds,
                            cache=ScoreCache())

            def evaluate(labels, scorer=scorer, backend=backend) -> tuple[float, int, int]:
                origin, passes[0], t = backend.stats.copy(), 0, time.monotonic()
                scorer.loo(labels, range(len(labels)))
                return time.monotonic() - t, backend.stats.minus(origin).computed_tokens, passes[0]

            first = evaluate(gold)
            rng = random.Random(0)
            flips = []
            for _ in range(5):
                labels = list(gold)
                k = rng.randrange(len(labels))
                labels[k] = not labels[k]
                flips.append(evaluate(labels))
            mean = [statistics.fmean(x[i] for x in flips) for i in range(3)]
            name = context if context == "other-groups" else f"other-folds ({folds})"
            print(f"| {name} | {'shared' if share else 'unshared'} | {first[0]:.2f} s, {first[1]:,}, {first[2]} | "
                  f"{mean[0]:.2f} s, {mean[1]:,.0f}, {mean[2]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
