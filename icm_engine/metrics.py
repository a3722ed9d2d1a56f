"""Agreement of a label set (and its scores) with gold labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


def label_metrics(
    labels: Sequence[bool | None], gold: Sequence[bool | None], scores: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """Accuracy over examples with both a label and gold; AUROC of scores where both classes occur.

    A label set and its mirror image are equally coherent to ICM, so `accuracy_flipped` is reported
    for diagnosis only; `accuracy` is the honest figure.
    """
    pairs = [(bool(y), bool(g)) for y, g in zip(labels, gold, strict=True) if y is not None and g is not None]
    out: dict[str, Any] = {"n_gold": sum(g is not None for g in gold), "n_compared": len(pairs)}
    out["accuracy"] = float(np.mean([y == g for y, g in pairs])) if pairs else None
    out["predicted_true_rate"] = float(np.mean([y for y, _ in pairs])) if pairs else None
    if scores is not None:
        sg = [(float(s), bool(g)) for s, g in zip(scores, gold, strict=True) if s is not None and g is not None]
        classes = {g for _, g in sg}
        out["auroc"] = float(roc_auc_score([g for _, g in sg], [s for s, _ in sg])) if len(classes) == 2 else None
    return out
