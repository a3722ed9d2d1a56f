"""The dataset's tabs, on every page of one dataset: what the signed-in member may open, the current one marked."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from webapp.datasets import permissions, selectors

register = template.Library()

# (name, title, url name, who sees it): "labels" for the roles that read labels, "blind" for annotators, "all".
TABS = (
    ("data", "Data", "datasets:detail", "all"),
    ("runs", "Runs", "runs:list", "labels"),
    ("review", "Review", "review:queue", "labels"),
    ("agreement", "Agreement", "review:dashboard", "labels"),
    ("spotchecks", "Spot-checks", "review:spotchecks", "labels"),
    ("label", "Label", "review:annotate", "blind"),
    ("settings", "Members and settings", "datasets:settings", "all"),
)

FALLBACK = {"label": "review"}


def tabs_for(role: str | None) -> list[tuple[str, str, str]]:
    """The tabs a member of this role sees: (name, title, url name)."""
    reads = permissions.reads_labels(role)
    return [(name, title, url) for name, title, url, who in TABS
            if who == "all" or (who == "labels") == reads]


@register.inclusion_tag("datasets/_tabs.html", takes_context=True)
def dataset_tabs(context: dict[str, Any], dataset, current: str) -> dict[str, Any]:
    role = context.get("role") or selectors.role_of(context["request"].user, dataset)
    shown = tabs_for(role)
    if current not in {name for name, _, _ in shown}:
        current = FALLBACK.get(current, current)  # blind labeling by a reviewer: part of their review
    return {"dataset": dataset, "role": role,
            "tabs": [{"name": name, "title": title, "url": reverse(url, args=[dataset.pk]), "current": name == current}
                     for name, title, url in shown]}
