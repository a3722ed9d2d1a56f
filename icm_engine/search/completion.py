"""The end of a batch: labels the consistency rule allows for the examples the search left open.

The search ends with some examples unlabeled (adding one whose log-odds is below the labeled set's mean
lowers U, the paper's mean signed log-odds, so most such proposals are rejected) and, under the paper's
repair (adopted only where U rises), with conflicts it chose to keep. A labeling tool hands back one label
per example that obeys its own rule, so each group is settled here: its open members (the unlabeled ones,
and every member of a group left in conflict) get the consistent assignment that best fits their log-odds
with the searched labels as context, the other members keep theirs. That is the paper's own use of ICM's
labels (many-shot prompting with them as demonstrations), held to the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, product

from ..consistency import ConsistencyRule

# Groups with more open members than this are settled greedily (2^12 assignments are tried exhaustively).
EXHAUSTIVE = 12


def conflicted(rule: ConsistencyRule, labels: Sequence[bool | None]) -> set[int]:
    """Every labeled member of each group that holds a conflict."""
    bad = {rule.group_of[c.i] for c in rule.conflicts(labels)}
    return {p for g in bad for p in rule.group_members[g] if labels[p] is not None}


def settle(rule: ConsistencyRule, labels: Sequence[bool | None], scores: Sequence[float | None],
           open_: set[int]) -> list[bool | None]:
    """`labels` with each open position labeled: per group, the assignment of its open members that is
    consistent with the rule (the others kept as they are) and maximises the sum of their signed scores
    (score if True, -score if False; a missing score counts 0). Positions not open keep their label."""
    out = list(labels)
    for members in rule.group_members:
        free = [p for p in members if p in open_]
        if not free:
            continue
        fixed = [p for p in members if p not in open_ and out[p] is not None]
        value = {p: float(scores[p] or 0.0) for p in free}
        if len(free) <= EXHAUSTIVE:
            best, best_fit = None, None
            for ys in product((True, False), repeat=len(free)):
                trial = dict(zip(free, ys, strict=True))
                if not _consistent(rule, trial, {p: bool(out[p]) for p in fixed}):
                    continue
                fit = sum(value[p] if y else -value[p] for p, y in trial.items())
                if best_fit is None or fit > best_fit:
                    best, best_fit = trial, fit
            if best is not None:
                for p, y in best.items():
                    out[p] = y
                continue
        _greedy(rule, out, free, fixed, value)
    return out


def _consistent(rule: ConsistencyRule, trial: dict[int, bool], fixed: dict[int, bool]) -> bool:
    both = {**fixed, **trial}
    for i, j in combinations(sorted(both), 2):
        if (i in trial or j in trial) and rule.pair_kind(i, j, both[i], both[j]) is not None:
            return False
    return True


def _greedy(rule: ConsistencyRule, out: list[bool | None], free: list[int], fixed: list[int],
            value: dict[int, float]) -> None:
    """Most confident first: each open member takes its scores' label where that is consistent with what is
    decided so far, else the other label where that is, else its scores' label (the rule cannot be met)."""
    decided = {p: bool(out[p]) for p in fixed}
    for p in sorted(free, key=lambda q: -abs(value[q])):
        want = value[p] > 0
        for y in (want, not want):
            if all(rule.pair_kind(p, q, y, v) is None for q, v in decided.items()):
                decided[p] = y
                break
        else:
            decided[p] = want
        out[p] = decided[p]


def mirrored(rule: ConsistencyRule, labels: Sequence[bool | None], scores: Sequence[float | None],
             settle_after: bool = True) -> tuple[list[bool | None], list[float | None]]:
    """The mirror image of a labeling (every label and score turned over). The mirror of a consistent labeling
    need not be one ("not both True": a group left all False turns all True), so such groups are settled
    again by the turned scores (`settle_after`)."""
    out = [None if y is None else not y for y in labels]
    turned = [None if v is None else -v for v in scores]
    if settle_after:
        out = settle(rule, out, turned, conflicted(rule, out))
    return out, turned
