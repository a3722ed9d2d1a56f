"""Agreement statistics on plain arrays (scikit-learn and statsmodels); no Django here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import cohens_kappa

from icm_engine.facade import gold_comparison, wilson

__all__ = ["CLASSES", "accuracy", "confusion", "kappa", "mcnemar_exact", "wilson"]

CLASSES = [True, False]


def accuracy(
    pred: Sequence[bool], gold: Sequence[bool], scores: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """Accuracy against gold with everything that keeps it honest (the engine's `gold_comparison`): n, the
    Wilson interval, the set's balance, the majority-class rate, AUROC of the scores, and warnings."""
    return gold_comparison(pred, gold, scores)


def confusion(pred: Sequence[bool], gold: Sequence[bool]) -> list[list[int]]:
    """Rows: gold True, gold False; columns: predicted True, predicted False."""
    if not pred:
        return [[0, 0], [0, 0]]
    return confusion_matrix(list(gold), list(pred), labels=CLASSES).tolist()


def kappa(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Cohen's kappa (scikit-learn) with its asymptotic 95% interval (statsmodels)."""
    n = len(a)
    if n == 0:
        return {"n": 0, "kappa": None, "ci_low": None, "ci_high": None, "undefined": "no_items"}
    if len(set(a)) < 2 or len(set(b)) < 2:
        # A rater that gave one label to everything has no variation to agree on: kappa is then 0 by its
        # formula (or 0/0 when both did), which reads as "chance agreement" and is not. One answer, never a number.
        return {"n": n, "kappa": None, "ci_low": None, "ci_high": None, "undefined": "one_class"}
    table = confusion_matrix(list(a), list(b), labels=CLASSES)
    value = float(cohen_kappa_score(list(a), list(b), labels=CLASSES))
    result = cohens_kappa(table, return_results=True)
    # The asymptotic interval can pass the bounds of kappa itself: clip it to [-1, 1].
    lo, hi = max(-1.0, float(result.kappa_low)), min(1.0, float(result.kappa_upp))
    return {"n": n, "kappa": value, "ci_low": None if np.isnan(lo) else lo, "ci_high": None if np.isnan(hi) else hi,
            "undefined": None}


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict[str, Any]:
    """McNemar's exact test of two raters' correctness on the same items (discordant pairs b, c)."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    n = len(a)
    if n == 0:
        return {"n": 0, "table": table, "only_first_correct": 0, "only_second_correct": 0, "p_value": None}
    result = mcnemar(table, exact=True)
    return {"n": n, "table": table, "only_first_correct": table[0][1], "only_second_correct": table[1][0],
            "statistic": float(result.statistic), "p_value": float(result.pvalue)}
