"""Ids that come from outside (query strings, bodies): a database id, or None for anything that cannot be one.

An id beyond the database's 64-bit integers is no id: SQLite cannot even bind it (OverflowError), so it must
never reach a query.
"""

from __future__ import annotations

from typing import Any

from django.urls import register_converter

MAX_ID = 2**63 - 1


def as_id(value: Any) -> int | None:
    """`value` as a positive database id (an int, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


class IdConverter:
    """The `<id:name>` path converter: digits that fit a database id. Any other path does not match (a 404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        pk = as_id(value)
        if pk is None:
            raise ValueError(value)  # Django: this path does not match
        return pk

    def to_url(self, value: int) -> str:
        return str(value)


# Registered once, on first import: the URL conf and the websocket routing both take ids as <id:name>.
register_converter(IdConverter, "id")
