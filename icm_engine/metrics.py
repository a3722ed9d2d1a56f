"""Agreement of a label set (and its scores) with gold labels, with what a reader needs to judge it.

An accuracy alone can make a useless labeling look good: on a set whose gold is 79% False, labeling
everything False scores 0.79. So every comparison with gold carries n, the set's balance (its share of
True), the accuracy of always answering gold's majority class on the same items, the AUROC of the scores,
and warnings (`WARNINGS`) computed with scipy's exact tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

# Each warning's code and the one line a page, the API's docs and the CLI show with it.
WARNINGS: dict[str, str] = {
    "one_class": "every label in the set is the same class: its accuracy is just that class's share of gold",
    "below_chance": "the 95% interval of the accuracy lies below 0.5: likely the mirror image of the truth",
    "no_better_than_majority": "not significantly better (one-sided exact binomial test, 5%) than always "
                               "answering gold's majority class",
    # A run's own, without gold (orientation.py): nothing named ICM's two classes decisively.
    "classes_not_named": "no label-free signal named the two classes decisively: the labels may be the mirror "
                         "image of what the model means by True",
}
ALPHA = 0.05


def wilson(successes: int, n: int) -> tuple[float | None, float | None]:
    """The 95% Wilson score interval of a proportion (None, None when n is 0)."""
    if n == 0:
        return None, None
    ci = binomtest(successes, n).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return float(ci.low), float(ci.high)


def auroc(scores: Sequence[float | None], gold: Sequence[bool | None]) -> float | None:
    """AUROC of the scores against gold over the items with both; None unless gold has both classes there."""
    pairs = [(float(s), bool(t)) for s, t in zip(scores, gold, strict=True) if s is not None and t is not None]
    if len({t for _, t in pairs}) < 2:
        return None
    return float(roc_auc_score([t for _, t in pairs], [s for s, _ in pairs]))


def gold_comparison(
    labels: Sequence[bool], gold: Sequence[bool], scores: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """A label set against gold on the same items (both lists already paired, no None).

    Returns n, correct, accuracy with its Wilson interval (ci_low, ci_high), balance (share of True among
    the set's labels), gold_balance, majority_accuracy (always answering gold's majority class), the
    one-sided exact binomial p-value of the accuracy against majority_accuracy, auroc (of `scores` where
    given and gold has both classes), and warnings (codes of `WARNINGS`, in that order).
    """
    n = len(labels)
    if len(gold) != n:
        raise ValueError(f"{n} labels but {len(gold)} gold labels")
    y = np.asarray(labels, dtype=bool)
    g = np.asarray(gold, dtype=bool)
    correct = int(np.sum(y == g))
    lo, hi = wilson(correct, n)
    gold_true = float(np.mean(g)) if n else None
    majority = max(gold_true, 1 - gold_true) if gold_true is not None else None
    out: dict[str, Any] = {
        "n": n, "correct": correct, "accuracy": correct / n if n else None, "ci_low": lo, "ci_high": hi,
        "balance": float(np.mean(y)) if n else None, "gold_balance": gold_true, "majority_accuracy": majority,
        "p_vs_majority": None, "auroc": None, "warnings": [],
    }
    if n == 0:
        return out
    if scores is not None:
        out["auroc"] = auroc(scores, g.tolist())
    # The test asks whether the set beats the majority rate; with every gold label one class nothing can.
    out["p_vs_majority"] = float(binomtest(correct, n, p=majority, alternative="greater").pvalue)
    if n >= 2 and len(set(y.tolist())) == 1:
        out["warnings"].append("one_class")
    if hi is not None and hi < 0.5:
        out["warnings"].append("below_chance")
    if out["p_vs_majority"] >= ALPHA:
        out["warnings"].append("no_better_than_majority")
    return out


def label_metrics(
    labels: Sequence[bool | None], gold: Sequence[bool | None], scores: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """`gold_comparison` over the examples with both a label and gold, plus `n_gold` and `n_compared`.

    `accuracy` is the honest figure; a label set and its mirror image are equally coherent to ICM, which is
    why `below_chance` is a warning. AUROC reads the scores of every example with gold, labeled or not.
    """
    if scores is not None and len(scores) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    idx = [i for i, (y, t) in enumerate(zip(labels, gold, strict=True)) if y is not None and t is not None]
    out = gold_comparison([bool(labels[i]) for i in idx], [bool(gold[i]) for i in idx])
    out["n_gold"] = sum(t is not None for t in gold)
    out["n_compared"] = len(idx)
    out["predicted_true_rate"] = out["balance"]
    out["auroc"] = auroc(scores, gold) if scores is not None else None
    return out


def warning_lines(comparison: dict[str, Any]) -> list[str]:
    """One line per warning of a comparison, for a terminal: `warning: CODE: explanation (figures)`."""
    figures = (f"accuracy {comparison['accuracy']:.3f} on {comparison['n']}, majority class "
               f"{comparison['majority_accuracy']:.3f}, share True {comparison['balance']:.3f}"
               if comparison.get("n") else "")
    return [f"warning: {code}: {WARNINGS[code]} ({figures})" for code in comparison.get("warnings", [])]
