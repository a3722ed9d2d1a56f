"""The search's settings: the paper's hyperparameters and the choices between the paper and the official code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..anchor import ANCHORS
from ..examples import Example
from ..scoring import CONTEXTS, DEMO_ORDERS, READOUTS

MODES = ("fast", "reference")
MODE_ALIASES = {"batched": "fast"}
SCHEDULES = ("paper", "code", "exp")
SEMANTICS = ("paper", "code")
INITS = ("random", "zero-shot")


@dataclass
class ICMConfig:
    """Hyperparameters; defaults are the paper's (App. A.1) and the official code's batch size."""

    alpha: float = 50.0
    initial_temperature: float = 10.0
    final_temperature: float = 0.01
    cooling: float = 0.99
    schedule: str | None = None  # paper | code | exp; None = the semantics' own (paper: paper, code: code)
    # The search's choices: paper (§1.4's recommendations) | code (the official code's: first K seeded, its
    # ConsistencyFix, its schedule, log-probs floored at 1e-5); None = the mode's own (fast: paper,
    # reference: code). `fast` with `code` is the official algorithm on the fast scorer.
    semantics: str | None = None
    num_seed: int = 8
    iterations: int = 3000
    fix_steps: int = 10
    boost: float = 100.0
    batch_size: int = 256
    mode: str = "fast"
    readout: str = "verdict"
    context: str = "all"
    calibrate: bool = False
    context_cap: int | None = None  # an approximation: at most this many demonstrations per target
    init: str = "random"  # random (the paper) | zero-shot: the K seeds' balanced labels follow zero-shot scores
    # none (the paper) | likelihood: the K seeds' labels follow the claim-likelihood anchor, and a batch whose
    # final labels disagree with the anchor overall is flipped (see anchor.py)
    anchor: str = "none"
    # With the anchor: U gains alpha * anchor_weight * (mean over labeled examples of the anchor's value signed
    # by the label), the same form and units (nats) as P. 0 (default): the anchor only seeds and names.
    anchor_weight: float = 0.0
    # position (the official code) | labeled: demonstrations in the order examples were first labeled
    demo_order: str = "position"
    seed: int = 0
    cache_size: int = 20000

    def validate(self) -> ICMConfig:
        problems = []
        self.mode = MODE_ALIASES.get(self.mode, self.mode)
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}")
        if self.semantics is not None and self.semantics not in SEMANTICS:
            problems.append(f"semantics must be one of {', '.join(SEMANTICS)}")
        elif self.semantics == "paper" and self.mode == "reference":
            problems.append("reference mode is the official code's semantics")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}")
        if not self.alpha > 0:
            problems.append("alpha must be positive")
        if not 0 < self.final_temperature <= self.initial_temperature:
            problems.append("temperatures must satisfy 0 < final <= initial")
        if not self.cooling > 0:
            problems.append("cooling must be positive")
        if self.num_seed < 0 or self.iterations < 0 or self.fix_steps < 0:
            problems.append("num_seed, iterations and fix_steps must be >= 0")
        if self.boost < 1:
            problems.append("boost must be >= 1")
        if self.init not in INITS:
            problems.append(f"init must be one of {', '.join(INITS)}")
        if self.anchor not in ANCHORS:
            problems.append(f"anchor must be one of {', '.join(ANCHORS)}")
        elif self.anchor != "none" and self.init != "random":
            problems.append("anchor likelihood labels the K seeds itself: leave init random")
        if not (math.isfinite(self.anchor_weight) and self.anchor_weight >= 0):
            problems.append("anchor_weight must be a finite number >= 0")
        elif self.anchor_weight and self.anchor != "likelihood":
            problems.append("anchor_weight weighs the likelihood anchor: set anchor likelihood")
        if self.demo_order not in DEMO_ORDERS:
            problems.append(f"demo_order must be one of {', '.join(DEMO_ORDERS)}")
        elif self.demo_order != "position" and self.mode == "reference":
            problems.append("reference mode keeps the official code's demonstration order (position)")
        if self.context not in CONTEXTS:
            problems.append(f"context must be one of {', '.join(CONTEXTS)}")
        if self.readout not in READOUTS:
            problems.append(f"readout must be one of {', '.join(READOUTS)}")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2")
        if self.context_cap is not None and (not isinstance(self.context_cap, int) or self.context_cap < 1):
            problems.append("context_cap must be a positive integer (or absent)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_schedule(self) -> str:
        return self.schedule or self.effective_semantics

    @property
    def effective_semantics(self) -> str:
        return self.semantics or ("code" if self.mode == "reference" else "paper")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ICMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown hyperparameters: {', '.join(sorted(unknown))}")
        return cls(**data).validate()


# The paper's batch and iterations (3,000 over a batch of 256: about 12 proposals per example).
PAPER_BATCH_SIZE = 256
PAPER_ITERATIONS = 3000
ITERATIONS_PER_EXAMPLE = 12


def sized_to(n_examples: int) -> dict[str, int]:
    """The batch size and iterations for `n_examples`: the paper's batch of 256 (all of them when fewer) and
    its 12 proposals per example of a batch, at most its 3,000. So 24 examples get a batch of 24 and 288
    iterations, not 3,000 iterations that mostly re-propose labels already settled."""
    batch = max(2, min(PAPER_BATCH_SIZE, n_examples))
    return {"batch_size": batch, "iterations": min(PAPER_ITERATIONS, ITERATIONS_PER_EXAMPLE * batch)}


def make_batches(examples: Sequence[Example], batch_size: int) -> list[list[int]]:
    """Split into batches of whole consistency groups (in order of first appearance), groups contiguous."""
    groups: dict[str, list[int]] = {}
    for ex in examples:
        groups.setdefault(ex.group, []).append(ex.uid)
    batches: list[list[int]] = []
    current: list[int] = []
    for members in groups.values():
        if current and len(current) + len(members) > batch_size:
            batches.append(current)
            current = []
        current.extend(members)
    if current:
        batches.append(current)
    return batches
