"""The search's settings: the paper's hyperparameters and the choices between the paper and the official code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import readout_settings
from ..anchor import ANCHORS
from ..examples import Example
from ..orientation import CHOICES as ORIENTATIONS
from ..scoring import DEMO_ORDERS
from ..setting import Settings, problems, setting

MODES = ("fast", "reference")
MODE_ALIASES = {"batched": "fast"}
SCHEDULES = ("paper", "code", "exp")
SEMANTICS = ("paper", "code")
INITS = ("random", "zero-shot")
# The paper's batch and iterations (3,000 over a batch of 256: about 12 proposals per example).
PAPER_BATCH_SIZE = 256
PAPER_ITERATIONS = 3000
ITERATIONS_PER_EXAMPLE = 12


@dataclass
class ICMConfig(Settings):
    """Hyperparameters; defaults are the paper's (App. A.1) and the official code's batch size. Each field that
    is a run setting describes itself (setting.py): the CLI, the run form and the API are made from these."""

    alpha: float = setting(50.0, "Weight of mutual predictability against conflicts in U (the paper's 50; lower it "
                           "when few proposals are accepted)", positive=True, advanced=True)
    initial_temperature: float = setting(10.0, "Annealing's starting temperature (the paper's 10)", positive=True,
                                         advanced=True)
    final_temperature: float = setting(0.01, "The temperature's floor (the paper's 0.01)", positive=True,
                                       advanced=True)
    cooling: float = setting(0.99, "The schedule's decay, beta of T0 / (1 + beta ln n) (the paper's 0.99)",
                             positive=True, advanced=True)
    schedule: str | None = setting(None, "The temperature schedule: the paper's, the official code's (by accepted "
                                   "flips) or exponential", choices=SCHEDULES, empty="the semantics' own",
                                   advanced=True)
    # The search's choices: paper (the recommended choices) | code (the official code's: first K seeded, its
    # ConsistencyFix, its schedule, log-probs floored at 1e-5); None = the mode's own (fast: paper,
    # reference: code). `fast` with `code` is the official algorithm on the fast scorer.
    semantics: str | None = setting(None, "The search's choices: paper (fast's own) or code (the official code's: the "
                                    "first K seeded, its repair and schedule). Fast with code is the official "
                                    "algorithm on the fast scorer", choices=SEMANTICS, empty="the mode's own",
                                    advanced=True)
    num_seed: int = setting(8, "Labels drawn at random (balanced) to start the search (the paper's K = 8)", low=0,
                            advanced=True, label="Initial random labels (K)")
    iterations: int = setting(3000, "Search iterations per batch", low=0,
                              empty=f"{ITERATIONS_PER_EXAMPLE} per example of a batch, at most the paper's "
                                    f"{PAPER_ITERATIONS}")
    fix_steps: int = setting(10, "ConsistencyFix rounds after each proposal (the paper's 10)", low=0, advanced=True)
    boost: float = setting(100.0, "How much likelier an unlabeled example that shares a group with a labeled one is "
                           "to be proposed (the paper's 100)", low=1, advanced=True)
    batch_size: int = setting(PAPER_BATCH_SIZE, "Examples per batch (ICM's cost grows with its square)", low=2,
                              empty=f"the paper's {PAPER_BATCH_SIZE}, or all of them when fewer")
    mode: str = setting("fast", "fast: shared prompt prefixes and cached scores; reference: the official code's "
                        "semantics and cost", choices=MODES)
    readout: str = readout_settings.readout("verdict")
    context: str = readout_settings.context("all")
    calibrate: bool = readout_settings.calibrate(False)
    # What calibration subtracts: the labeled examples' mean log-odds (batch), or each consistency group's mean
    # (group: a claim counts by how it compares with its group mates; every example is scored).
    centre: str = readout_settings.centre("batch")
    context_cap: int | None = setting(None, "An approximation: each target sees at most N demonstrations (a fixed "
                                      "choice per target), so a label change re-scores only the targets that show "
                                      "it", low=1, empty="off (every demonstration)", advanced=True)
    init: str = setting("random", "The K initial labels: random (the paper) or balanced by the zero-shot ranking",
                        choices=INITS, advanced=True)
    # The claim-likelihood anchor (anchor.py): none (the paper's U) | likelihood: the K seeds' labels follow it
    # and it is a term of U from the start | agreeing: a third of the way through each batch it joins U if it
    # agrees with the labels the search found (so it helps find the partition only where it knows something
    # about it).
    # None = the semantics' own (paper: agreeing; code: none, as the official code).
    anchor: str | None = setting(None, "The model's zero-shot likelihood of each claim (compared within its group) as "
                                 "a term of U. agreeing: it joins a third of the way through each batch, weighted by "
                                 "how far it agrees with the labels found by then; likelihood: the initial labels "
                                 "follow it and it counts from the start; none: the paper's U", choices=ANCHORS,
                                 empty="the task preset's, else the semantics' own (paper: agreeing, code: none)",
                                 advanced=True)
    # The anchor's term in U: alpha * anchor_weight * (mean over labeled examples of its value signed by the
    # label), in P's units (normalized: each in its own spread). 0: the anchor only seeds.
    anchor_weight: float = setting(1.0, "The anchor's weight in U beside mutual predictability, each measured in its "
                                   "own spread (0: it only seeds, with anchor likelihood)", low=0, advanced=True)
    # position (the official code) | labeled: demonstrations in the order examples were first labeled
    demo_order: str = setting("position", "Fast mode: demonstrations by position (the official code) or in the order "
                              "examples were labeled (a new label joins each prompt at its end, so the model reuses "
                              "the rest of every prompt)", choices=DEMO_ORDERS, advanced=True,
                              label="Demonstration order")
    # Under context "other-folds": the batch's consistency groups are dealt into this many folds.
    folds: int = readout_settings.folds()
    # Mutual predictability in units of the readout's own spread (the root mean square of every example's
    # calibrated log-odds given the K seed labels), so alpha and the temperatures mean the same under every
    # readout; None = the semantics' own (paper: on, code: off, as the official code).
    normalize: bool | None = setting(None, "Mutual predictability in units of the readout's spread, so alpha and the "
                                     "temperatures mean the same under every readout (off: nats, as the official "
                                     "code)", empty="the semantics' own (paper: on, code: off)", advanced=True,
                                     label="Mutual predictability in the readout's own units")
    # After the search: every example it left unlabeled gets the model's prediction with the searched labels
    # as context, and conflicts it kept are settled, all within the consistency rule (search/completion.py).
    complete: bool = setting(True, "After the search, the examples it left unlabeled get the model's prediction with "
                             "the searched labels as context, within the consistency rule (off: the search's partial "
                             "labeling)", label="Label every example")
    # What names the two classes after the search (orientation.py): auto (the signals chosen on development
    # data), one signal, or none (the search's own naming, flagged).
    orient: str = setting("auto", "What decides which class is True after the search (a labeling and its mirror "
                          "image are equally coherent): auto (the claim likelihood and zero-shot, then, where they "
                          "cannot decide, the split readout's zero-shot alone; chosen on development data), one "
                          "signal, or none (the search's own naming, with a warning)",
                          choices=ORIENTATIONS, advanced=True, label="Name the classes by")
    seed: int = 0
    cache_size: int = setting(20000, "Scores kept in the search's cache (a score is reused while its prompt is "
                              "unchanged)", low=0, advanced=True)

    def validate(self) -> ICMConfig:
        """Each setting's own values and bounds (setting.py), then how they go together; ValueError names all."""
        self.mode = MODE_ALIASES.get(self.mode, self.mode)
        found = problems(self)
        if found:  # how settings go together means something only for values each setting takes
            raise ValueError("; ".join(found))
        if self.semantics == "paper" and self.mode == "reference":
            found.append("reference mode is the official code's semantics")
        if self.final_temperature > self.initial_temperature:
            found.append("temperatures must satisfy 0 < final <= initial")
        if self.anchor == "likelihood" and self.init != "random":
            found.append("anchor likelihood labels the K seeds itself: leave init random")
        if self.demo_order != "position" and self.mode == "reference":
            found.append("reference mode keeps the official code's demonstration order (position)")
        if found:
            raise ValueError("; ".join(found))
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
