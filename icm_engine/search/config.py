"""The search's settings: the paper's hyperparameters and the choices between the paper and the official code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..anchor import ANCHORS
from ..examples import Example
from ..orientation import CHOICES as ORIENTATIONS
from ..scoring import CONTEXTS, DEFAULT_FOLDS, DEMO_ORDERS, READOUTS, SCOPES

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
    # What calibration subtracts: the labeled examples' mean log-odds (batch), or each consistency group's mean
    # (group: a claim counts by how it compares with its group mates; every example is scored).
    centre: str = "batch"
    context_cap: int | None = None  # an approximation: at most this many demonstrations per target
    init: str = "random"  # random (the paper) | zero-shot: the K seeds' balanced labels follow zero-shot scores
    # The claim-likelihood anchor (anchor.py): none (the paper's U) | likelihood: the K seeds' labels follow it
    # and it is a term of U from the start | agreeing: halfway through each batch it joins U if it agrees with
    # the labels the search found (so it helps find the partition only where it knows something about it).
    # None = the semantics' own (paper: agreeing; code: none, as the official code).
    anchor: str | None = None
    # The anchor's term in U: alpha * anchor_weight * (mean over labeled examples of its value signed by the
    # label), in P's units (normalized: each in its own spread). 0: the anchor only seeds.
    anchor_weight: float = 1.0
    # position (the official code) | labeled: demonstrations in the order examples were first labeled
    demo_order: str = "position"
    # Under context "other-folds": the batch's consistency groups are dealt into this many folds.
    folds: int = DEFAULT_FOLDS
    # Mutual predictability in units of the readout's own spread (the root mean square of every example's
    # calibrated log-odds given the K seed labels), so alpha and the temperatures mean the same under every
    # readout; None = the semantics' own (paper: on, code: off, as the official code).
    normalize: bool | None = None
    # After the search: every example it left unlabeled gets the model's prediction with the searched labels
    # as context, and conflicts it kept are settled, all within the consistency rule (search/completion.py).
    complete: bool = True
    # What names the two classes after the search (orientation.py): auto (the signals chosen on development
    # data), one signal, or none (the search's own naming, flagged).
    orient: str = "auto"
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
        if self.anchor is not None and self.anchor not in ANCHORS:
            problems.append(f"anchor must be one of {', '.join(ANCHORS)}")
        elif self.anchor == "likelihood" and self.init != "random":
            problems.append("anchor likelihood labels the K seeds itself: leave init random")
        if not (isinstance(self.anchor_weight, int | float) and math.isfinite(self.anchor_weight)
                and self.anchor_weight >= 0):
            problems.append("anchor_weight must be a finite number >= 0")
        if self.demo_order not in DEMO_ORDERS:
            problems.append(f"demo_order must be one of {', '.join(DEMO_ORDERS)}")
        elif self.demo_order != "position" and self.mode == "reference":
            problems.append("reference mode keeps the official code's demonstration order (position)")
        if self.context not in CONTEXTS:
            problems.append(f"context must be one of {', '.join(CONTEXTS)}")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or not 2 <= self.folds <= 64:
            problems.append("folds must be an integer from 2 to 64")
        if self.centre not in SCOPES:
            problems.append(f"centre must be one of {', '.join(SCOPES)}")
        if self.orient not in ORIENTATIONS:
            problems.append(f"orient must be one of {', '.join(ORIENTATIONS)}")
        for name in ("complete", "calibrate"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false")
        if self.normalize is not None and not isinstance(self.normalize, bool):
            problems.append("normalize must be true, false or absent")
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

    @property
    def effective_anchor(self) -> str:
        if self.anchor is not None:
            return self.anchor
        return "agreeing" if self.effective_semantics == "paper" else "none"

    @property
    def effective_normalize(self) -> bool:
        return self.effective_semantics == "paper" if self.normalize is None else self.normalize

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
