"""The likelihood anchor: which way round a label set is, from the model's own zero-shot knowledge.

Readouts that compare contexts (`split`, `channel` after calibration) are nearly symmetric under a
global label flip: a label set and its mirror image are about equally mutually predictable, and the
search can settle in either. Naming the two classes needs a signal with a direction. The log-likelihood
of a claim after a label-free prefix (the task's: `Claim: <claim>` for claims and truthfulqa) is one the model has
without any labels: within a group of claims about one question the model prefers the true one far more often than
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

# none: the paper's U. likelihood: the K seeds follow the anchor and it is a term of U from the start (with
# anchor_weight). agreeing: the paper's random seeds; a third of the way through a batch the
# anchor's weight becomes anchor_weight times its agreement with the labels found so far (rank-biserial r).
ANCHORS = ("none", "likelihood", "agreeing")


def likelihood_anchor(task: Task, backend: Backend, examples: Sequence[Example]) -> list[float]:
    """Group-centred log P(claim | label-free prefix) per character of the claim: positive leans True.

    Per character, so a longer claim is not less likely for its length alone: summed, the log-likelihood
    preferred the shorter of two GSM8K solutions and of two Alpaca responses, and named both dev sets'
    classes backwards (docs/engine.md). Characters, not tokens, so every backend gives the same measure."""
    if not examples:
        return []
    prefixes, targets = zip(*(task.render_likelihood(ex) for ex in examples), strict=True)
    raw = np.asarray(backend.continuation_logprobs(list(prefixes), list(targets)), dtype=float).reshape(-1)
    per_char = raw / np.array([max(1, len(t.strip())) for t in targets], dtype=float)
    return centre_by_group(per_char, [ex.group for ex in examples])


def has_likelihood_fields(task: Task, examples: Sequence[Example]) -> bool:
    """Whether every example has the fields the anchor's prompt needs (a custom template may lack them)."""
    needed = task.likelihood_fields()
    return all(ex.fields.get(f) not in (None, "") for ex in examples for f in needed)


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
