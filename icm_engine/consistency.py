"""Logical consistency: which labeled pairs of a group conflict, and how a conflict can be repaired.

The rule is the official code's (`pick_two_inconsistent_claims`) over label-free keys:
- contradiction: keys differ and both labels are True (or, for asymmetric comparisons, both False);
- implication: keys are equal and the labels differ.
Pairs in different groups never interact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from .examples import Example

Labels = Sequence[bool | None]


@dataclass(frozen=True)
class Conflict:
    i: int
    j: int
    kind: str  # "contradiction" | "implication"


class ConsistencyRule:
    """Checks conflicts for one batch of examples under a task's consistency mode."""

    def __init__(self, examples: Sequence[Example], mode: str):
        self.mode = mode
        self.keys = [ex.key for ex in examples]
        self.group_members: list[list[int]] = []
        self.group_of: list[int] = []
        index: dict[str, int] = {}
        for pos, ex in enumerate(examples):
            g = index.setdefault(ex.group, len(index))
            if g == len(self.group_members):
                self.group_members.append([])
            self.group_members[g].append(pos)
            self.group_of.append(g)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def pair_kind(self, i: int, j: int, yi: bool, yj: bool) -> str | None:
        if not self.active or self.group_of[i] != self.group_of[j]:
            return None
        if self.keys[i] == self.keys[j]:
            return "implication" if yi != yj else None
        if yi and yj:
            return "contradiction"
        if self.mode == "asymmetric" and not yi and not yj:
            return "contradiction"
        return None

    def conflicts(self, labels: Labels) -> list[Conflict]:
        if not self.active:
            return []
        out: list[Conflict] = []
        for members in self.group_members:
            labeled = [m for m in members if labels[m] is not None]
            for i, j in combinations(labeled, 2):
                kind = self.pair_kind(i, j, bool(labels[i]), bool(labels[j]))
                if kind:
                    out.append(Conflict(i, j, kind))
        return out

    def count(self, labels: Labels) -> int:
        return len(self.conflicts(labels))

    def options(self, conflict: Conflict, official: bool = False) -> list[tuple[bool, bool]]:
        """Label pairs (y_i, y_j) that make this pair consistent.

        The paper enumerates every consistent option; the official code tries exactly two
        (contradiction: (1,0),(0,1); implication: (1,1),(0,0)).
        """
        if official:
            if conflict.kind == "contradiction":
                return [(True, False), (False, True)]
            return [(True, True), (False, False)]
        combos = [(True, True), (True, False), (False, True), (False, False)]
        return [c for c in combos if self.pair_kind(conflict.i, conflict.j, *c) is None]

    def group_assignments(self, members: Sequence[int]) -> list[tuple[bool, ...]]:
        """Every fully consistent labeling of one group (used by the bootstrap baseline)."""
        out = []
        for mask in range(1 << len(members)):
            ys = tuple(bool(mask >> k & 1) for k in range(len(members)))
            if all(self.pair_kind(members[a], members[b], ys[a], ys[b]) is None
                   for a, b in combinations(range(len(members)), 2)):
                out.append(ys)
        return out
