"""Who may do what in a dataset. Roles rank owner > reviewer > annotator > viewer.

Non-members never learn that a dataset exists (selectors answer 404); members below the role an
action needs get 403 (PermissionDenied).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .models import Role

RANK = {Role.VIEWER: 0, Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.OWNER: 3}

# The least role each action needs.
VIEW = Role.VIEWER
ANNOTATE = Role.ANNOTATOR
WRITE_LABELS = Role.REVIEWER
MANAGE = Role.OWNER


def allows(role: str | None, needed: str) -> bool:
    return role is not None and RANK[Role(role)] >= RANK[Role(needed)]


def require(role: str | None, needed: str, action: str) -> None:
    if not allows(role, needed):
        raise PermissionDenied(f"{action} needs the {Role(needed).label.lower()} role or higher in this dataset")


# Annotators label blind: they never read another label set (gold, model, other people's), nor the
# fields of an example that carry labels or answers.
LABEL_READERS = (Role.OWNER, Role.REVIEWER, Role.VIEWER)
LABEL_LIKE_FIELDS = frozenset({"candidate_label", "confidence", "ref_cot", "ref_answer", "is_liberal"})


def reads_labels(role: str | None) -> bool:
    return role in LABEL_READERS


def require_label_reader(role: str | None) -> None:
    if role is not None and not reads_labels(role):
        raise PermissionDenied("annotators label blind: label sets are not shown to them")


def visible_fields(role: str | None, fields: dict) -> dict:
    if reads_labels(role):
        return fields
    return {k: v for k, v in fields.items() if k not in LABEL_LIKE_FIELDS}
