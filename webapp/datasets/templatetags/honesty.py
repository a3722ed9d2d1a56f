"""Template filters that show an accuracy against gold with its warnings (icm_engine.metrics.WARNINGS)."""

from __future__ import annotations

from django import template

from icm_engine.facade import WARNINGS

register = template.Library()

# A warning's badge, short enough for a table cell; its one-line explanation is WARNINGS[code].
BADGES = {"one_class": "one class", "below_chance": "below chance", "no_better_than_majority": "≤ majority class",
          "classes_not_named": "classes not named"}


@register.filter
def warning_badge(code: str) -> str:
    return BADGES.get(code, code)


@register.filter
def warning_text(code: str) -> str:
    return WARNINGS.get(code, "")


@register.simple_tag
def warning_legend() -> list[tuple[str, str]]:
    """Every badge with its explanation, for the legend under a table of accuracies."""
    return [(BADGES[code], text) for code, text in WARNINGS.items()]
