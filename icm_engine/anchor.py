"""The likelihood anchor: which way round a label set is, from the model's own zero-shot knowledge.

Readouts that compare contexts (`split`, `channel` after calibration) are nearly symmetric under a
global label flip: a label set and its mirror image are about equally mutually predictable, and the
search can settle in either. Naming the two classes needs a signal with a direction. The log-likelihood
of a claim after a label-free prefix (`Question: ...\\nAnswer: <claim>`) is one the model has without any
labels: within a group of claims about one question the model prefers the true one far more often than
it says "True" to it (docs/results.md). Scores are centred within each consistency group (the claims of
one question differ only in their answers, so their likelihoods are comparable), and the ungrouped ones
across the batch. Gold labels are never read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .backends.base import Backend
from .examples import Example
from .presets import Task

ANCHORS = ("none", "likelihood")


def likelihood_anchor(task: Task, backend: Backend, examples: Sequence[Example]) -> list[float]:
    """Group-centred log P(claim | label-free prefix) of each example: positive leans True."""
    if not examples:
        return []
    prefixes, targets = zip(*(task.render_likelihood(ex) for ex in examples), strict=True)
    raw = np.asarray(backend.continuation_logprobs(list(prefixes), list(targets)), dtype=float).reshape(-1)
    return centre_by_group(raw, [ex.group for ex in examples])


def centre_by_group(values: Sequence[float], groups: Sequence[str]) -> list[float]:
    """Each value minus its group's mean; members of one-example groups minus the mean of all of those."""
    members: dict[str, list[int]] = {}
    for p, g in enumerate(groups):
        members.setdefault(g, []).append(p)
    out = [0.0] * len(values)
    singles = [ps[0] for ps in members.values() if len(ps) == 1]
    single_mean = float(np.mean([values[p] for p in singles])) if singles else 0.0
    for ps in members.values():
        mean = float(np.mean([values[p] for p in ps])) if len(ps) > 1 else single_mean
        for p in ps:
            out[p] = float(values[p]) - mean
    return out


def agreement(labels: Sequence[bool | None], anchor: Sequence[float]) -> float:
    """How far the labels follow the anchor: sum of the anchor over True labels minus over False ones."""
    return float(sum(a if y else -a for y, a in zip(labels, anchor, strict=True) if y is not None))
