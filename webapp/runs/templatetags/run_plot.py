"""The live run page's plot: U and gold agreement over the search's steps, as SVG geometry."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def run_plot(history: list, width: int = 640, height: int = 160) -> dict[str, str]:
    """SVG polylines for U (scaled to its own range) and gold agreement (0..1) over steps."""
    if len(history) < 2:
        return {"score": "", "agreement": ""}
    steps = [h[0] for h in history]
    lo_x, hi_x = min(steps), max(steps) or 1
    span_x = (hi_x - lo_x) or 1
    scores = [h[1] for h in history]
    lo_u, hi_u = min(scores), max(scores)
    span_u = (hi_u - lo_u) or 1.0

    def x(step: float) -> float:
        return round((step - lo_x) / span_x * width, 1)

    score = " ".join(f"{x(s)},{round(height - (u - lo_u) / span_u * height, 1)}" for s, u, *_ in history)
    agreement = " ".join(f"{x(h[0])},{round(height - h[2] * height, 1)}" for h in history
                         if len(h) > 2 and h[2] is not None)
    # The axes' tick labels: U's range on the left, the steps below (gold agreement's 0 … 1 on the right).
    return {"score": score, "agreement": agreement, "u_min": f"{lo_u:.2f}", "u_max": f"{hi_u:.2f}",
            "u_mid": f"{(lo_u + hi_u) / 2:.2f}", "step_min": lo_x, "step_max": hi_x,
            "step_mid": round((lo_x + hi_x) / 2)}
