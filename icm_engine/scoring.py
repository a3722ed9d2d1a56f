"""Mutual predictability: prompts with labeled demonstrations, log-odds readouts, and the score U.

Three readouts turn a prompt into a log-odds that the target is True:
- `verdict` (the paper's): the next-token log-probabilities of the label words after
  "... I think this claim is"; log-odds = log p(True word) - log p(False word).
- `channel` (noisy channel, Min et al. 2022): log P(target text | demonstrations, "True" verbalizer)
  minus the same under the "False" verbalizer. Label-conditional, so mutual predictability stays
  well defined; it reads the model's knowledge through the likelihood of the claim itself.
- `split` (class-conditional likelihood): log P(target | the demonstrations labeled True, under a
  "True ..." header) minus log P(target | those labeled False, under a "False ..." header). Each
  label's examples form their own context, so a target is scored by which group it resembles.

Scores are cached by prompt content (an LRU whose contents are part of the search checkpoint, so a
resumed search sees the same cache hits, hence the same numbers, as an uninterrupted one).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import KW_ONLY, dataclass, field

import numpy as np

from .backends.base import Backend
from .examples import Example
from .presets import Task

READOUTS = ("verdict", "channel", "split")
# Which labeled examples a target sees: "all" others (the paper), only those of other consistency groups
# ("other-groups": small models copy the label of a near-identical group mate), or those of other folds
# ("other-folds": the batch's groups dealt into `folds` folds, cross-fitting instead of leaving one group
# out; the targets of a fold share one context per label, which a backend computes once).
CONTEXTS = ("all", "other-groups", "other-folds")
DEFAULT_FOLDS = 4
# What calibration subtracts (offsets): the batch's mean log-odds, or each consistency group's.
SCOPES = ("batch", "group")
# The order of a prompt's demonstrations: by position in the batch (the official code), or by when each
# example was first labeled ("labeled"): a new label then joins every prompt at its end, so the backend's
# prefix store holds the rest of each prompt from the evaluation before.
DEMO_ORDERS = ("position", "labeled")
# The official code floors each pooled probability at 1e-5 before taking logs.
LOG_FLOOR = math.log(1e-5)
DEMO_SEPARATOR = "\n\n"

Demos = Sequence[tuple[int, bool]]


class ScoreCache:
    """Content-keyed LRU of log-odds. Its state is a plain list, for checkpoints."""

    def __init__(self, capacity: int = 20000, state: list | None = None):
        self.capacity = capacity
        self._data: OrderedDict[str, float] = OrderedDict((k, v) for k, v in (state or []))
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return value

    def put(self, key: str, value: float) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def state(self) -> list:
        return [[k, v] for k, v in self._data.items()]

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Scorer:
    """Scores targets given demonstrations, for one set of examples (one batch).

    `reference=True` reproduces the official code's cost: every prompt is its own model call and
    nothing is cached; log-probabilities are floored at 1e-5 as the code does.
    """

    task: Task
    backend: Backend
    examples: Sequence[Example]
    _: KW_ONLY  # the options, by name
    readout: str = "verdict"
    reference: bool = False
    # The official code's floor on each label log-probability (1e-5); on in reference mode and under the
    # code's semantics.
    floor: bool | None = None
    cache: ScoreCache | None = None
    context_policy: str = "all"
    # An approximation, off by default: each target sees at most this many demonstrations, always the
    # same ones while they stay labeled (a fixed random ranking per target), so a label change re-scores
    # only the targets that show that example, and each prompt is short.
    context_cap: int | None = None
    demo_order: str = "position"
    # Under context "other-folds": how many folds the batch's groups are dealt into.
    folds: int = DEFAULT_FOLDS
    # Under demo_order "labeled": each labeled position's rank in labeling order (set by the search);
    # examples without a rank (labeled by the candidate being scored) come last, in position order.
    rank: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; choose one of {', '.join(READOUTS)}")
        if self.context_policy not in CONTEXTS:
            raise ValueError(f"unknown context {self.context_policy!r}; choose one of {', '.join(CONTEXTS)}")
        if self.demo_order not in DEMO_ORDERS:
            raise ValueError(f"unknown demonstration order {self.demo_order!r}; choose one of {', '.join(DEMO_ORDERS)}")
        self._groups = [ex.group for ex in self.examples]
        self._fold = fold_of(self._groups, self.folds) if self.context_policy == "other-folds" else []
        if self.cache is None:
            self.cache = ScoreCache()
        self._verdict = [self.task.render(ex) for ex in self.examples]
        self._channel: list[dict[bool, str]] = []
        if self.readout == "channel":
            for ex in self.examples:
                self._channel.append({y: "".join(self.task.render_channel(ex, y)) for y in (True, False)})
        self._lines: list[str] = []
        if self.readout == "split":
            self._lines = [self.task.render_target(ex) for ex in self.examples]
        self._prefix = self.task.instruction

    # -- prompts ---------------------------------------------------------------------------------
    def demo_text(self, pos: int, label: bool) -> str:
        if self.readout == "channel":
            return self._channel[pos][label]
        return self._verdict[pos] + self.task.label_words[0 if label else 1]

    def context(self, demos: Demos) -> str:
        if self.readout == "split":
            return self.split_context(demos, True) + "\x00" + self.split_context(demos, False)
        return self._prefix + "".join(self.demo_text(p, y) + DEMO_SEPARATOR for p, y in demos)

    def split_context(self, demos: Demos, label: bool) -> str:
        """The split readout's context for one label: a header, then the demonstrations with that label."""
        header = self.task.split_header.format(verbalizer=self.task.verbalizers[0 if label else 1])
        return self._prefix + header + "".join(self._lines[p] + "\n" for p, y in demos if y == label)

    def prompt_key(self, demos: Demos, target: int) -> str:
        if self.readout == "channel":
            shown = self._channel[target][True]
        elif self.readout == "split":
            shown = self._lines[target]
        else:
            shown = self._verdict[target]
        text = self.context(demos) + "\x00" + shown
        return hashlib.sha1(f"{self.readout}\x00{text}".encode()).hexdigest()

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, items: Sequence[tuple[Demos, int]]) -> np.ndarray:
        """Log-odds (True vs False) of each target given its demonstrations."""
        out = np.zeros(len(items))
        todo: list[int] = []
        keys: list[str] = []
        for k, (demos, target) in enumerate(items):
            if self.reference:
                todo.append(k)
                keys.append("")
                continue
            key = self.prompt_key(demos, target)
            cached = self.cache.get(key)
            if cached is None:
                todo.append(k)
                keys.append(key)
            else:
                out[k] = cached
        if not todo:
            return out
        if self.reference:
            values = np.concatenate([self._raw([items[k]]) for k in todo])
        else:
            # Deduplicate within the call: candidate label sets often repeat prompts.
            unique: dict[str, int] = {}
            for k, key in zip(todo, keys, strict=True):
                unique.setdefault(key, k)
            computed = self._raw([items[k] for k in unique.values()])
            by_key = dict(zip(unique.keys(), computed, strict=True))
            values = np.array([by_key[key] for key in keys])
            for key, value in by_key.items():
                self.cache.put(key, float(value))
        out[todo] = values
        return out

    @property
    def floored(self) -> bool:
        """Whether label log-probabilities are floored as the official code floors them: as asked, else in
        reference mode."""
        return self.reference if self.floor is None else self.floor

    def _backend_options(self) -> dict:
        # The reference mode pays the official code's cost: no shared-prefix reuse in the backend either.
        if self.reference and self.backend.capabilities.prefix_sharing:
            return {"share_prefixes": False}
        return {}

    def _raw(self, items: Sequence[tuple[Demos, int]]) -> np.ndarray:
        options = self._backend_options()
        if self.readout == "verdict":
            prompts = [self.context(d) + self._verdict[t] for d, t in items]
            lp = self.backend.label_logprobs(prompts, list(self.task.label_words), **options)
            if self.floored:
                lp = np.maximum(lp, LOG_FLOOR)
            return lp[:, 0] - lp[:, 1]
        prefixes: list[str] = []
        targets: list[str] = []
        if self.readout == "split":
            for demos, t in items:
                for y in (True, False):
                    prefixes.append(self.split_context(demos, y))
                    targets.append(self._lines[t])
            lp = self.backend.continuation_logprobs(prefixes, targets, **options).reshape(-1, 2)
            return lp[:, 0] - lp[:, 1]
        for demos, t in items:
            ctx = self.context(demos)
            for y in (True, False):
                head, tail = self.task.render_channel(self.examples[t], y)
                prefixes.append(ctx + head)
                targets.append(tail)
        lp = self.backend.continuation_logprobs(prefixes, targets, **options).reshape(-1, 2)
        return lp[:, 0] - lp[:, 1]

    def loo(self, labels: Sequence[bool | None], targets: Sequence[int]) -> np.ndarray:
        """Leave-one-out scores: each target with every other labeled example (position order) in context."""
        labeled = [(p, bool(y)) for p, y in enumerate(labels) if y is not None]
        items = [(self.demos_for(t, labeled), t) for t in targets]
        return self.score(items)

    def demos_for(self, target: int, labeled: Sequence[tuple[int, bool]]) -> list[tuple[int, bool]]:
        demos = [(p, y) for p, y in labeled if self.visible(p, target)]
        cap = self.context_cap
        if cap is not None and len(demos) > cap:
            rank = self._ranking(target)
            demos = sorted(sorted(demos, key=lambda d: rank[d[0]])[:cap])
        if self.demo_order == "labeled":
            last = len(self.examples)
            demos.sort(key=lambda d: (self.rank.get(d[0], last), d[0]))
        return demos  # a fixed order: prompts keep sharing their prefixes

    def _ranking(self, target: int) -> list[int]:
        if not hasattr(self, "_rankings"):
            self._rankings: dict[int, list[int]] = {}
        if target not in self._rankings:
            # Seeded by the target's text, not its position, so a target keeps its demonstrations
            # wherever its batch puts it.
            order = list(range(len(self.examples)))
            random.Random(f"context:{self._verdict[target]}").shuffle(order)
            rank = [0] * len(order)
            for r, p in enumerate(order):
                rank[p] = r
            self._rankings[target] = rank
        return self._rankings[target]

    def visible(self, demo: int, target: int) -> bool:
        """Whether a labeled example may be a demonstration for `target` under the context policy."""
        if demo == target:
            return False
        if self.context_policy == "other-folds":
            return self._fold[demo] != self._fold[target]
        return self.context_policy == "all" or self._groups[demo] != self._groups[target]


def fold_of(groups: Sequence[str], folds: int) -> list[int]:
    """Each position's fold: the distinct groups, ordered by a hash of their name (not by position, so a file
    sorted by topic does not put one topic in one fold), dealt round robin into `folds` folds of sizes that
    differ by at most one group. Group mates share a fold."""
    if folds < 2:
        raise ValueError("folds must be at least 2")
    names = sorted(dict.fromkeys(groups), key=lambda g: hashlib.sha1(f"fold:{g}".encode()).hexdigest())
    fold = {g: k % folds for k, g in enumerate(names)}
    return [fold[g] for g in groups]


def centre(labels: Sequence[bool | None], scores: Sequence[float | None]) -> float:
    """Calibration offset: the mean log-odds of the labeled examples (0 when none are labeled).

    Contextual calibration by the batch: a readout's shared bias (a label word's prior, or the split
    readout's preference for the larger class's context) moves every score alike, and subtracting the
    mean removes it. Under calibration a one-class labeling scores P = 0, and P grows with
    2·n_T·n_F/N² times the separation of the two classes' mean scores.
    """
    vals = [s for y, s in zip(labels, scores, strict=True) if y is not None and s is not None]
    return float(np.mean(vals)) if vals else 0.0


def offsets(labels: Sequence[bool | None], scores: Sequence[float | None], groups: Sequence[Hashable],
            scope: str) -> list[float]:
    """What calibration subtracts from each position's score. `batch`: the labeled examples' mean log-odds
    (centre). `group`: the mean of the scores of the position's consistency group, so only how a claim compares
    with its group mates counts, not how well the context predicts their shared topic (examples with no group
    mate scored: the mean of all such). Under `group` a group labeled all one way adds nothing to P."""
    if scope == "batch":
        return [centre(labels, scores)] * len(scores)
    if scope != "group":
        raise ValueError(f"unknown calibration scope {scope!r}; choose one of {', '.join(SCOPES)}")
    members: dict[Hashable, list[int]] = {}
    for p, (g, v) in enumerate(zip(groups, scores, strict=True)):
        if v is not None:
            members.setdefault(g, []).append(p)
    singles = [ps[0] for ps in members.values() if len(ps) == 1]
    single = float(np.mean([scores[p] for p in singles])) if singles else 0.0
    out = [single] * len(scores)
    for ps in members.values():
        if len(ps) > 1:
            mean = float(np.mean([scores[p] for p in ps]))
            for p in ps:
                out[p] = mean
    return out


def centred(labels: Sequence[bool | None], scores: Sequence[float | None], groups: Sequence[Hashable],
            scope: str) -> list[float | None]:
    """The scores less their calibration offsets (None stays None)."""
    off = offsets(labels, scores, groups, scope)
    return [None if v is None else v - o for v, o in zip(scores, off, strict=True)]


def signed_mean(labels: Sequence[bool | None], scores: Sequence[float | None], calibrate: bool = False) -> float:
    """The official `train_prob`: mean over labeled examples of the log-odds of the assigned label."""
    offset = centre(labels, scores) if calibrate else 0.0
    vals = [s - offset if y else offset - s for y, s in zip(labels, scores, strict=True) if y is not None]
    return float(np.mean(vals)) if vals else 0.0


def energy(
    labels: Sequence[bool | None], scores: Sequence[float | None], *, alpha: float, conflicts: int,
    calibrate: bool = False, prior: Sequence[float] | None = None, prior_weight: float = 0.0, scale: float = 1.0,
) -> float:
    """U = alpha * mean signed log-odds / scale - number of inconsistent pairs (the official `get_energy`, whose
    scale is 1: log-odds in nats).

    With a label-free prior (one value per example, positive leaning True), alpha * prior_weight * its mean
    signed by the labels is added: a term the labels cannot explain away by predicting each other.
    """
    p = signed_mean(labels, scores, calibrate)
    if prior is not None and prior_weight:
        p += prior_weight * signed_mean(labels, prior)
    return alpha * p / scale - conflicts


def spread(scores: Sequence[float | None]) -> float:
    """The root mean square of the (calibrated) scores: the unit in which a normalised search measures mutual
    predictability. 1 where there is nothing to measure."""
    vals = np.array([s for s in scores if s is not None], dtype=float)
    rms = float(np.sqrt(np.mean(vals**2))) if len(vals) else 0.0
    return rms if np.isfinite(rms) and rms > 1e-9 else 1.0
