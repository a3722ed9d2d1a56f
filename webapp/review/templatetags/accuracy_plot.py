"""The agreement dashboard's plot: each label set's accuracy and its interval, as SVG geometry."""

from __future__ import annotations

import math
from typing import Any

from django import template

register = template.Library()

ROW = 26  # pixels a label set's row takes


@register.simple_tag
def accuracy_plot(report: dict[str, Any], names: dict[int, str], width: int = 560) -> dict[str, Any]:
    """Rows for a dot-and-interval plot of each set's accuracy (x in pixels over 0..1), and the plot's height."""
    rows = []
    for i, acc in enumerate(report["accuracy"]):
        if acc["accuracy"] is None or math.isnan(acc["accuracy"]):
            continue
        rows.append({"y": 14 + i * ROW, "name": names.get(acc["label_set"], str(acc["label_set"])),
                     "x": round(acc["accuracy"] * width, 1), "lo": round(acc["ci_low"] * width, 1),
                     "hi": round(acc["ci_high"] * width, 1), "acc": acc["accuracy"]})
    return {"rows": rows, "height": 28 + ROW * len(rows)}
