"""The two ways the search makes its choices: the paper's (the recommended choices
docs/engine.md names) and the official code's. Each strategy seeds a batch, repairs conflicts (ConsistencyFix)
after the seeds and after a proposal, and says whether scores are floored as the code floors them."""

from __future__ import annotations

import math
import random
from typing import Protocol

from ..consistency import Conflict, ConsistencyRule
from .config import ICMConfig

Labels = list[bool | None]
Scores = list[float | None]
Repaired = tuple[Labels, float, Scores]  # labels after ConsistencyFix, their U and scores


class SearchContext(Protocol):
    """What a strategy uses of the search (search.loop.ICMSearch); a protocol, so this module does not
    import the loop that imports it."""

    config: ICMConfig
    rule: ConsistencyRule  # the current batch's
    rng: random.Random

    def evaluate(self, labels: Labels) -> tuple[float, Scores, int]:
        """U, the scores and the number of conflicts."""
        ...


class Semantics(Protocol):
    name: str
    floor: bool  # log-probs floored at 1e-5, as the official code's are

    def seed_positions(self, rng: random.Random, n: int, k: int) -> list[int]: ...

    def repair_seeds(self, search: SearchContext, labels: Labels, U: float, scores: Scores) -> Repaired:
        """The seed labels after ConsistencyFix, with their U and scores."""
        ...

    def repair_proposal(self, search: SearchContext, labels: Labels) -> Repaired:
        """A proposed label set after ConsistencyFix, with its U and scores."""
        ...


class PaperSemantics:
    """Random K seeds; every consistent option of a conflicting pair; the best over a scan, adopted only if U
    strictly rises."""

    name = "paper"
    floor = False

    def seed_positions(self, rng: random.Random, n: int, k: int) -> list[int]:
        return sorted(rng.sample(range(n), k))

    def fix(self, search: SearchContext, labels: Labels, U: float, scores: Scores) -> Repaired:
        for _ in range(search.config.fix_steps):
            conflicts = search.rule.conflicts(labels)
            if not conflicts:
                break
            search.rng.shuffle(conflicts)
            best = None
            for conflict in conflicts:
                for yi, yj in search.rule.options(conflict):
                    cand = list(labels)
                    cand[conflict.i], cand[conflict.j] = yi, yj
                    cu, cs, _ = search.evaluate(cand)
                    if best is None or cu > best[0]:
                        best = (cu, cand, cs)
            if best is None or not best[0] > U:
                break
            U, labels, scores = best
        return labels, U, scores

    def repair_seeds(self, search: SearchContext, labels: Labels, U: float, scores: Scores) -> Repaired:
        return self.fix(search, labels, U, scores)

    def repair_proposal(self, search: SearchContext, labels: Labels) -> Repaired:
        U, scores, conflicts = search.evaluate(labels)
        if conflicts:
            return self.fix(search, labels, U, scores)
        return labels, U, scores


class CodeSemantics:
    """The official code's: the first K positions seeded; its `fix_inconsistency` (two options per pair
    type, the first pair with U >= best adopted); after a proposal a repair under a dummy metric, then a
    full re-score."""

    name = "code"
    floor = True

    def seed_positions(self, rng: random.Random, n: int, k: int) -> list[int]:
        return list(range(k))

    def fix(self, search: SearchContext, labels: Labels, best_metric: float) -> tuple[Labels, tuple | None]:
        """Reproduces the code's never-reset "found" flag: once a fix was found, later rounds keep scanning
        until `fix_steps` runs out (a cost the official code pays)."""
        found_any = False
        adopted: tuple | None = None
        for _ in range(search.config.fix_steps):
            conflicts: list[Conflict] = search.rule.conflicts(labels)
            if not conflicts:
                break
            search.rng.shuffle(conflicts)
            for conflict in conflicts:
                candidates = []
                for yi, yj in search.rule.options(conflict, official=True):
                    cand = list(labels)
                    cand[conflict.i], cand[conflict.j] = yi, yj
                    candidates.append((*search.evaluate(cand)[:2], cand))
                cu, cs, cand = max(candidates, key=lambda c: c[0])
                if cu >= best_metric:
                    labels, best_metric, adopted = cand, cu, (cu, cs)
                    found_any = True
                    break
            if not found_any:
                break
        return labels, adopted

    def repair_seeds(self, search: SearchContext, labels: Labels, U: float, scores: Scores) -> Repaired:
        fixed, adopted = self.fix(search, labels, U)
        if adopted is None:
            return labels, U, scores
        U, scores, _ = search.evaluate(fixed)
        return fixed, U, scores

    def repair_proposal(self, search: SearchContext, labels: Labels) -> Repaired:
        # The code repairs with a dummy metric (the first option found is adopted), then re-scores.
        labels, _ = self.fix(search, labels, -math.inf)
        U, scores, _ = search.evaluate(labels)
        return labels, U, scores


SEMANTICS_BY_NAME: dict[str, Semantics] = {"paper": PaperSemantics(), "code": CodeSemantics()}
