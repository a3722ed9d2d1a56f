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
