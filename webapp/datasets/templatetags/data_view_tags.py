"""The data view's links: its current state (search, columns, filters) with one thing changed."""

from __future__ import annotations

from typing import Any

from django import template

from webapp.datasets.data_view import DataViewQuery

register = template.Library()


@register.simple_tag
def querystring_for(query: DataViewQuery, **changes: Any) -> str:
    return query.querystring(**changes)
