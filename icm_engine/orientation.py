"""Naming ICM's two classes: which of a labeling and its mirror image the model means by "True".

Mutual predictability and the consistency rule cannot tell a labeling from its mirror image (every label
flipped): under a readout that compares the two classes' contexts the mirror is about as predictable, and
"different answers => not both True" holds for both when each group has one True. The search finds a
partition; a signal that does not come from the search, and never from gold, names its classes.

Each signal is one value per example, higher where the model leans True without the search's labels:
- `likelihood`: the claim's own log-likelihood after a label-free prefix, centred within its group
  (anchor.py);
- `zero-shot`: the verdict readout's log-odds of the label words with no demonstrations;
- `split-zero-shot`: the label words' meaning read through the claim: its log-likelihood under the split
  readout's True header against under its False header, with no demonstrations, centred within its group;
- `verdict`: the label words' meaning in context. Each example's verdict log-odds with the labeling as
  demonstrations plus the same with its mirror image: whatever the example copies from its context
  cancels, what the model believes of it stays. The difference between the verdict readout's mutual
  predictability of the labeling and of its mirror is this signal's mean signed by the labels.

A signal's agreement with a labeling is the rank-biserial correlation of its values with the labels
(2 AUROC - 1: +1 when every True example scores above every False one, -1 for the mirror image), with the
two-sided Mann-Whitney p-value of the difference. A signal too weak to decide (p above `ALPHA`) turns
nothing over; `orient` says so, and the run keeps a warning. Under `auto`, where the likelihood and the
zero-shot verdict cannot decide, the split readout's zero-shot may decide alone (`FALLBACK`); where they
decide, it may veto.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu, norm

from .anchor import has_likelihood_fields, likelihood_anchor
from .backends.base import Backend, BackendError
from .examples import Example
from .presets import Task
from .scoring import DEFAULT_FOLDS, ScoreCache, Scorer, centred

SIGNALS = ("likelihood", "zero-shot", "split-zero-shot", "verdict")
ALPHA = 0.05


@dataclass(frozen=True)
class Agreement:
    """How far a signal's values follow a labeling: r = 2 AUROC - 1 in [-1, 1], and the p-value."""

    r: float
    p: float
    n_true: int
    n_false: int

    @property
    def decisive(self) -> bool:
        return self.p <= ALPHA and self.r != 0


def agreement(values: Sequence[float | None], labels: Sequence[bool | None]) -> Agreement:
    """The signal's agreement with the labels, over the examples that have both."""
    hi = [float(v) for v, y in zip(values, labels, strict=True) if v is not None and y is True]
    lo = [float(v) for v, y in zip(values, labels, strict=True) if v is not None and y is False]
    if not hi or not lo:
        return Agreement(0.0, 1.0, len(hi), len(lo))
    test = mannwhitneyu(hi, lo, alternative="two-sided")
    auroc = float(test.statistic) / (len(hi) * len(lo))
    return Agreement(round(2 * auroc - 1, 6), float(test.pvalue), len(hi), len(lo))


def zero_shot_values(task: Task, backend: Backend, examples: Sequence[Example]) -> list[float]:
    """Each example's verdict log-odds with no demonstrations, each label word pooled with its lower-case form
    (as the official code pools every top token that contains "true"): with no examples of the task's own
    casing, the default model answers " true" more than " True", and the exact words alone followed the
    truth half as well on the sanity set's dev half (docs/engine.md)."""
    prompts = [task.instruction + task.render(ex) for ex in examples]
    if not prompts:
        return []
    true_words, false_words = _variants(task.label_words[0]), _variants(task.label_words[1])
    words = [*true_words, *false_words]
    try:
        lp = np.asarray(backend.label_logprobs(prompts, words), dtype=float)
    except BackendError:  # a variant is not one token for this model: the task's words alone
        lp = np.asarray(backend.label_logprobs(prompts, list(task.label_words)), dtype=float)
        true_words, false_words = true_words[:1], false_words[:1]
    k = len(true_words)
    pooled = np.logaddexp.reduce(lp[:, :k], axis=1) - np.logaddexp.reduce(lp[:, k:k + len(false_words)], axis=1)
    return [float(v) for v in pooled]


def has_split_fields(task: Task, examples: Sequence[Example]) -> bool:
    """Whether every example has the fields the split readout's prompts read (a custom template may lack them)."""
    needed = [f for f in task.required_fields("split") if f != task.key_field]
    return all(ex.fields.get(f) not in (None, "") for ex in examples for f in needed)


def split_zero_shot_values(task: Task, backend: Backend, examples: Sequence[Example]) -> list[float]:
    """Each example's split-readout log-odds with no demonstrations (its likelihood under the True header less
    under the False header), centred within its consistency group as the readout's calibration is."""
    if not examples:
        return []
    scorer = Scorer(task, backend, examples, readout="split", cache=ScoreCache())
    values = [float(v) for v in scorer.score([([], t) for t in range(len(examples))])]
    return [float(v) for v in centred([True] * len(values), values, [ex.group for ex in examples], "group")]


def _variants(word: str) -> list[str]:
    return list(dict.fromkeys([word, word.lower()]))


def verdict_values(task: Task, backend: Backend, examples: Sequence[Example], labels: Sequence[bool | None],
                   folds: int = DEFAULT_FOLDS) -> list[float | None]:
    """Each labeled example's verdict log-odds with the labeling in context plus with its mirror in context
    (the other folds' examples as demonstrations, so group mates never show)."""
    targets = [p for p, y in enumerate(labels) if y is not None]
    if not targets:
        return [None] * len(labels)
    scorer = Scorer(task, backend, examples, readout="verdict", context_policy="other-folds", folds=folds,
                    cache=ScoreCache())
    mirror = [None if y is None else not y for y in labels]
    both = scorer.loo(labels, targets) + scorer.loo(mirror, targets)
    out: list[float | None] = [None] * len(labels)
    for p, v in zip(targets, both, strict=True):
        out[p] = float(v)
    return out


def signal_values(name: str, task: Task, backend: Backend, examples: Sequence[Example],
                  labels: Sequence[bool | None], folds: int = DEFAULT_FOLDS) -> list[float | None]:
    if name == "likelihood":
        return list(likelihood_anchor(task, backend, examples))
    if name == "zero-shot":
        return list(zero_shot_values(task, backend, examples))
    if name == "split-zero-shot":
        return split_zero_shot_values(task, backend, examples)
    if name == "verdict":
        return verdict_values(task, backend, examples, labels, folds)
    raise ValueError(f"unknown orientation signal {name!r}; choose one of {', '.join(SIGNALS)}")


# What `auto` combines, chosen on development data (docs/defaults.md): each signal named a dev set backwards
# where the other did not, and neither was ever decisive against the truth alone.
AUTO = ("likelihood", "zero-shot")
# Where those two cannot decide, this one may alone; where they decide, it may only veto. Of the development
# files' 68 distinct searches it decided 7 that the two left undecided and turned 4 over, 3 to the truth and one
# at chance either way; it named none backwards, and vetoed one naming (0.375, its mirror 0.625), which now warns
# (docs/engine.md). It can turn over only a naming the run would otherwise warn about.
FALLBACK = "split-zero-shot"
CHOICES = ("auto", *SIGNALS, "none")


@dataclass
class Orientation:
    """What named a batch's classes. `signals`: each signal's agreement (r, p) with the labels as returned (the
    mirror image's is -r); `z` and `p`: their combination (Stouffer's), positive where it backs the labels as
    returned (negative only for an undecided naming the signals leaned against); `flipped`: whether the
    search's labels were turned over; `decided`: whether a signal backed the naming significantly and none
    went against it (decide())."""

    signal: str
    flipped: bool = False
    decided: bool = False
    z: float = 0.0
    p: float = 1.0
    signals: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def combined_z(agreements: Sequence[Agreement]) -> float:
    """Stouffer's combination of the signals' two-sided p-values, each signed by its direction."""
    if not agreements:
        return 0.0
    zs = [float(np.sign(a.r)) * float(norm.isf(min(max(a.p, 1e-300), 1.0) / 2)) for a in agreements]
    return float(sum(zs) / np.sqrt(len(zs)))


def decide(labels: Sequence[bool | None], values: dict[str, Sequence[float | None]], name: str,
           fallback: Sequence[float | None] | None = None) -> Orientation:
    """Whether to turn the labels over, from the signals' values (each a list over the labels' examples).

    The signals together (Stouffer's z) back the labeling or its mirror image. Their choice is `decided` when
    the combination is significant (p at most ALPHA) and no signal is significant against it: one signal
    alone, with the other silent, must be strong to decide. Only a decided choice turns the labels over. An
    undecided one leaves the search's own naming, which is not a coin: U chose it with the anchor and, under
    the verdict readout, the label words' meaning; on the development files a weak signal's flips were wrong
    more often than right (docs/engine.md). Either way an undecided naming is reported, and the run warned.

    `fallback` (FALLBACK's values): a signal the combination leaves out. Where the signals decide, it may only
    veto (significant against their choice: undecided); where they cannot, it decides alone when it is
    significant and none of them is significant against it."""
    found = {s: agreement(v, labels) for s, v in values.items()}
    vetoes = {FALLBACK: agreement(fallback, labels)} if fallback is not None else {}
    main = _decided(labels, found, name, vetoes=vetoes)
    if main.decided or not vetoes:
        return main
    # The fallback's own naming, under the same rule: significant, and no signal significant against it.
    alone = _decided(labels, {**found, **vetoes}, f"{name}, then {FALLBACK}", by=FALLBACK)
    return alone if alone.decided else main


def _decided(labels: Sequence[bool | None], found: dict[str, Agreement], name: str, by: str | None = None,
             vetoes: dict[str, Agreement] | None = None) -> Orientation:
    """The naming the agreements `found` back (by: the one signal that decides alone; else their combination);
    `vetoes`: signals that count only against it."""
    if not found:
        return Orientation(signal=name)
    z = combined_z([found[by]] if by else list(found.values()))
    backs_mirror = z < 0
    p = float(2 * norm.sf(abs(z)))
    found = {**found, **(vetoes or {})}
    against = any(a.decisive and np.sign(a.r) * (-1.0 if backs_mirror else 1.0) < 0 for a in found.values())
    decided = p <= ALPHA and not against
    flip = backs_mirror and decided
    sign = -1.0 if flip else 1.0
    return Orientation(
        signal=name, flipped=flip, decided=decided, z=round(sign * z, 4), p=p,
        signals={s: {"r": round(sign * a.r, 4), "p": a.p} for s, a in found.items()})


def orient(task: Task, backend: Backend, examples: Sequence[Example], labels: Sequence[bool | None], choice: str,
           folds: int = DEFAULT_FOLDS, likelihood: Callable[[], Sequence[float]] | None = None) -> Orientation:
    """The orientation of `labels` (over `examples`, one batch) under the setting `choice` (CHOICES). The
    likelihood and split-zero-shot signals are left out where the examples lack the fields their prompts need;
    `likelihood`, where given, returns its values (a search that already computed them for its seeds)."""
    if choice == "none":
        return Orientation(signal="none")
    names = AUTO if choice == "auto" else (choice,)
    split_ok = has_split_fields(task, examples)
    names = tuple(n for n in names if (n != "likelihood" or has_likelihood_fields(task, examples))
                  and (n != FALLBACK or split_ok))
    values = {n: (list(likelihood()) if n == "likelihood" and likelihood is not None
                  else signal_values(n, task, backend, examples, labels, folds)) for n in names}
    fallback = split_zero_shot_values(task, backend, examples) if choice == "auto" and split_ok else None
    return decide(labels, values, "+".join(names) or "none", fallback=fallback)


def orientation_warnings(orientations: Sequence[dict[str, Any]]) -> list[str]:
    """The warnings (metrics.WARNINGS) of a run whose batches were oriented so (each an Orientation.as_dict())."""
    return ["classes_not_named"] if any(not o.get("decided") for o in orientations) else []
