"""One label set from several ICM seeds: a majority vote of the seeds' labels (each as its orientation named
them), each label's confidence the share of the seeds that gave it, and how far the seeds agree.

Seeds of one search differ in their random initial labels and proposals; where they agree the vote changes
nothing, and where one seed settled elsewhere (a mirror image its orientation could not name, a worse
partition) the others outvote it. A tie goes to the seed the label-free pick chose (the highest final U).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np


@dataclass
class Consensus:
    labels: list[bool | None]
    # The share of the seeds that labeled an example and gave it its consensus label (None: no seed labeled it).
    confidence: list[float | None]
    seeds: int
    # How far the seeds agree: the mean over pairs of seeds of the share of examples both labeled alike, each
    # pair's share, and Fleiss' kappa over the examples every seed labeled (None where undefined).
    agreement: float | None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    kappa: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "agreement": self.agreement, "pairs": self.pairs, "kappa": self.kappa}


def consensus(label_sets: Sequence[Sequence[bool | None]], *, pick: int = 0,
              names: Sequence[Any] | None = None) -> Consensus:
    """The majority vote of `label_sets` (one per seed, over the same examples in the same order). `pick`: the
    index of the seed whose label breaks a tie. `names`: what each seed is called in `pairs` (its index by
    default)."""
    if not label_sets:
        raise ValueError("a consensus needs at least one label set")
    n = len(label_sets[0])
    if any(len(s) != n for s in label_sets):
        raise ValueError("every seed's label set must cover the same examples")
    if not 0 <= pick < len(label_sets):
        raise ValueError(f"pick must index one of the {len(label_sets)} label sets")
    names = list(names) if names is not None else list(range(len(label_sets)))
    labels: list[bool | None] = []
    confidence: list[float | None] = []
    for i in range(n):
        votes = [s[i] for s in label_sets if s[i] is not None]
        if not votes:
            labels.append(None)
            confidence.append(None)
            continue
        yes = sum(bool(v) for v in votes)
        no = len(votes) - yes
        label = yes > no if yes != no else (label_sets[pick][i] if label_sets[pick][i] is not None else votes[0])
        labels.append(bool(label))
        confidence.append((yes if label else no) / len(votes))
    pairs = []
    for a, b in combinations(range(len(label_sets)), 2):
        both = [(x, y) for x, y in zip(label_sets[a], label_sets[b], strict=True) if x is not None and y is not None]
        if both:
            pairs.append({"a": names[a], "b": names[b], "n": len(both),
                          "agreement": round(sum(x == y for x, y in both) / len(both), 4)})
    mean = round(float(np.mean([p["agreement"] for p in pairs])), 4) if pairs else None
    return Consensus(labels, confidence, len(label_sets), mean, pairs, _fleiss(label_sets))


def _fleiss(label_sets: Sequence[Sequence[bool | None]]) -> float | None:
    """Fleiss' kappa (statsmodels) over the examples every seed labeled; None for one seed or where it is
    undefined (every label the same)."""
    if len(label_sets) < 2:
        return None
    from statsmodels.stats.inter_rater import fleiss_kappa

    rows = [[sum(bool(s[i]) for s in label_sets), sum(not s[i] for s in label_sets)]
            for i in range(len(label_sets[0])) if all(s[i] is not None for s in label_sets)]
    if not rows:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = float(fleiss_kappa(np.array(rows), method="fleiss"))
    return round(kappa, 4) if np.isfinite(kappa) else None
