"""Baselines ICM is measured against, on the same model, readout and batches.

- zero-shot: each example alone.
- likelihood: zero-shot too, but read as the claim's own likelihood after a label-free prefix, centred
  within each consistency group (the likelihood anchor of anchor.py, as a labeler of its own).
- random-icl: every other example of the batch in context with random (balanced) labels.
- gold-icl: the same with gold labels (the ceiling; the only place gold enters a prompt).
- bootstrap (the LessWrong critique's simple method): zero-shot predictions, then rounds where each
  example is predicted with the others' previous predictions as demonstrations, each round
  followed by the consistency rule (per group, the consistent labeling that best fits the scores).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import readout_settings
from .anchor import likelihood_anchor
from .backends.base import Backend
from .consistency import ConsistencyRule
from .examples import Example
from .presets import Task
from .results import LabelingResult
from .scoring import ScoreCache, Scorer, centred
from .search import make_batches
from .setting import Settings, problems, setting

METHODS = ("zero-shot", "likelihood", "random-icl", "gold-icl", "bootstrap")


@dataclass
class BaselineConfig(Settings):
    """A baseline's settings, with their defaults: the official code's readout, every other example of the
    batch in context, no calibration, three bootstrap rounds, the paper's batch of 256. Each describes itself
    (setting.py), the readout settings as ICM's do."""

    readout: str = readout_settings.readout("verdict")
    context: str = readout_settings.context("all")
    calibrate: bool = readout_settings.calibrate(False)
    shots: int | None = setting(None, "Baselines: at most this many demonstrations per prompt", low=1,
                                empty="every demonstration the context allows", advanced=True)
    rounds: int = setting(3, "Bootstrap rounds", low=0, advanced=True)
    batch_size: int = setting(256, "Examples per batch", low=2)
    folds: int = readout_settings.folds()
    centre: str = readout_settings.centre("batch")

    def validate(self) -> BaselineConfig:
        found = problems(self)
        if found:
            raise ValueError("; ".join(found))
        return self


@dataclass
class BaselineResult(LabelingResult):
    """A baseline's labels: what every labeler returns, nothing more."""


def enforce_consistency(rule: ConsistencyRule, scores: Sequence[float]) -> list[bool]:
    """Per group, the consistent labeling with the largest total signed score (no model calls)."""
    labels = [s > 0 for s in scores]
    if not rule.active:
        return labels
    for members in rule.group_members:
        if len(members) < 2 or len(members) > 12:
            continue
        options = rule.group_assignments(members)
        if not options:
            continue
        best = max(options, key=lambda ys: sum(scores[m] if y else -scores[m] for m, y in zip(members, ys,
                                                                                              strict=True)))
        for m, y in zip(members, best, strict=True):
            labels[m] = y
    return labels


def _demos(scorer: Scorer, target: int, labels: Sequence[bool | None], shots: int | None, rng: random.Random):
    others = [p for p in range(len(labels)) if labels[p] is not None and scorer.visible(p, target)]
    if shots is not None and len(others) > shots:
        others = sorted(rng.sample(others, shots))
    return [(p, bool(labels[p])) for p in others]


def run_baseline(
    method: str,
    examples: Sequence[Example],
    task: Task,
    backend: Backend,
    config: BaselineConfig | None = None,
    *,
    gold: Sequence[bool | None] | None = None,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> BaselineResult:
    """Label `examples` by `method` (gold only for gold-icl, where it fills the demonstrations)."""
    c = (config or BaselineConfig()).validate()
    if method not in METHODS:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
    if method == "gold-icl" and (gold is None or any(g is None for g in gold)):
        raise ValueError("gold-icl needs a gold label for every example")
    start = time.monotonic()
    origin = backend.stats.copy()
    labels_out: list[bool | None] = [None] * len(examples)
    scores_out: list[float | None] = [None] * len(examples)
    cache = ScoreCache()
    for b, uids in enumerate(make_batches(examples, c.batch_size)):
        rng = random.Random(f"{seed}:{method}:{b}")
        batch = [examples[u] for u in uids]
        n = len(batch)
        scorer = Scorer(task, backend, batch, readout=c.readout, cache=cache, context_policy=c.context, folds=c.folds)
        rule = ConsistencyRule(batch, task.consistency)

        def predict(context_labels: Sequence[bool | None], scorer=scorer, n=n, rng=rng, batch=batch) -> list[float]:
            items = [(_demos(scorer, t, context_labels, c.shots, rng), t) for t in range(n)]
            values = [float(v) for v in scorer.score(items)]
            # Calibration as in ICM: the batch's (or each group's) mean log-odds is the readout's shared bias.
            return centred([True] * n, values, [ex.group for ex in batch], c.centre) if c.calibrate else values

        if method == "zero-shot":
            scores = predict([None] * n)
            labels = [s > 0 for s in scores]
        elif method == "likelihood":
            scores = likelihood_anchor(task, backend, batch)
            labels = [s > 0 for s in scores]
        elif method in ("random-icl", "gold-icl"):
            if method == "gold-icl":
                assert gold is not None
                shown = [gold[u] for u in uids]
            else:
                shown = [True] * (n // 2) + [False] * (n - n // 2)
                rng.shuffle(shown)
            scores = predict(shown)
            labels = [s > 0 for s in scores]
        else:
            scores = predict([None] * n)
            labels = enforce_consistency(rule, scores)
            for _ in range(c.rounds):
                scores = predict(labels)
                labels = enforce_consistency(rule, scores)
        for p, u in enumerate(uids):
            labels_out[u] = labels[p]
            scores_out[u] = scores[p]
        if on_progress:
            on_progress(len(uids))
    return BaselineResult(labels_out, scores_out, backend.stats.minus(origin), time.monotonic() - start)


def evaluate_test(
    test: Sequence[Example],
    train: Sequence[Example],
    train_labels: Sequence[bool | None],
    task: Task,
    backend: Backend,
    readout: str = "verdict",
    shots: int | None = None,
    seed: int = 0,
    calibrate: bool = False,
) -> dict[str, Any]:
    """Many-shot prompting: each test example with the labeled training examples as demonstrations."""
    demos_all = [p for p, y in enumerate(train_labels) if y is not None]
    if shots is not None and len(demos_all) > shots:
        demos_all = sorted(random.Random(seed).sample(demos_all, shots))
    combined = list(train) + list(test)
    scorer = Scorer(task, backend, combined, readout=readout)
    demos = [(p, bool(train_labels[p])) for p in demos_all]
    origin = backend.stats.copy()
    start = time.monotonic()
    scores = scorer.score([(demos, len(train) + k) for k in range(len(test))])
    if calibrate:
        scores = scores - scores.mean()
    return {
        "scores": [float(s) for s in scores],
        "labels": [bool(s > 0) for s in scores],
        "demonstrations": len(demos),
        "stats": backend.stats.minus(origin),
        "wall_s": time.monotonic() - start,
    }
