"""The data view's read: a dataset's examples with the labels of chosen label sets side by side, searched,
filtered by one set's label or by disagreement between the shown sets, and paged. Its whole state is the
page's query string, so a reload or a shared address shows the same rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import OuterRef, Q, QuerySet, Subquery

from .models import Dataset, Example, Label, LabelSet, LabelSetKind
from .permissions import reads_labels, visible_fields
from .selectors import User, dataset_label_sets, examples_of, role_of

PER_PAGE = 25
MAX_SHOWN = 6  # label columns side by side
LABEL_VALUES = {"true": True, "false": False, "none": None}


@dataclass(frozen=True)
class DataViewQuery:
    """What the address asks for. `label` filters on one shown set: (its id, "true" | "false" | "none")."""

    q: str = ""
    sets: tuple[int, ...] = ()
    label: tuple[int, str] | None = None
    disagree: bool = False
    page: str = "1"
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], readable: list[LabelSet]) -> DataViewQuery:
        """Read the query string. A set the user may not read, or a malformed filter, is left out and named in
        `problems` (the page says so); nothing else changes."""
        problems = []
        known = {ls.pk: ls for ls in readable}
        if "sets" in params:
            asked = params.getlist("sets") if hasattr(params, "getlist") else [params["sets"]]
            sets = []
            for raw in asked:
                pk = int(raw) if str(raw).isdigit() else None
                if pk in known and pk not in sets:
                    sets.append(pk)
                elif raw:
                    problems.append(f"no label set {raw!r} to show here")
            if len(sets) > MAX_SHOWN:
                problems.append(f"{len(sets) - MAX_SHOWN} label set(s) past the first {MAX_SHOWN} side by side")
                sets = sets[:MAX_SHOWN]
        else:
            sets = default_sets(readable)
        label = None
        raw_label = str(params.get("label") or "")
        if raw_label:
            pk, _, value = raw_label.partition(":")
            if pk.isdigit() and int(pk) in sets and value in LABEL_VALUES:
                label = (int(pk), value)
            else:
                problems.append(f"the label filter {raw_label!r} names no shown set and true, false or none")
        return cls(q=str(params.get("q") or "")[:200], sets=tuple(sets), label=label,
                   disagree=params.get("disagree") in ("1", "on", "true"), page=str(params.get("page") or "1"),
                   problems=tuple(problems))

    def querystring(self, **changes: Any) -> str:
        """This state as a query string, with `changes` applied (page 1, or None, is left out)."""
        state = {"q": self.q, "sets": list(self.sets), "disagree": "1" if self.disagree else "",
                 "label": f"{self.label[0]}:{self.label[1]}" if self.label else "", "page": self.page}
        state.update(changes)
        pairs: list[tuple[str, Any]] = []
        for key in ("q", "sets", "label", "disagree", "page"):
            value = state[key]
            if key == "sets":
                pairs.extend(("sets", pk) for pk in value)
                if not value:
                    pairs.append(("sets", ""))  # none chosen on purpose: no label column, not the defaults
            elif value not in ("", None) and not (key == "page" and str(value) == "1"):
                pairs.append((key, value))
        return urlencode(pairs)


def default_sets(readable: list[LabelSet]) -> list[int]:
    """Gold's latest version beside the newest other set: what an auditor compares first."""
    gold = [ls for ls in readable if ls.kind == LabelSetKind.GOLD]
    others = [ls for ls in readable if ls.kind != LabelSetKind.GOLD]
    return [max(sets, key=lambda ls: (ls.created, ls.pk)).pk for sets in (gold, others) if sets]


def _with_labels(examples: QuerySet[Example], shown: list[LabelSet]) -> QuerySet[Example]:
    for ls in shown:
        value = Label.objects.filter(label_set=ls, example=OuterRef("pk")).values("value")[:1]
        examples = examples.annotate(**{f"label_{ls.pk}": Subquery(value)})
    return examples


def _disagreeing(shown: list[LabelSet]) -> Q:
    """Some two shown sets label the example, one True and the other False."""
    q = Q(pk__in=[])
    for a in shown:
        for b in shown:
            if a.pk != b.pk:
                q |= Q(**{f"label_{a.pk}": True, f"label_{b.pk}": False})
    return q


@dataclass
class DataView:
    query: DataViewQuery
    readable: list[LabelSet]
    shown: list[LabelSet]
    page: Page
    rows: list[dict[str, Any]]
    reads_labels: bool


def data_view(user: User, dataset: Dataset, params: Mapping[str, Any]) -> DataView:
    """The page of examples `params` asks for. Annotators label blind: no label column and no label filter."""
    role = role_of(user, dataset)
    readable = list(dataset_label_sets(user, dataset).order_by("kind", "name", "version")) if reads_labels(role) \
        else []
    query = DataViewQuery.from_params(params, readable)
    shown = sorted((ls for ls in readable if ls.pk in query.sets), key=lambda ls: query.sets.index(ls.pk))
    examples = _with_labels(examples_of(dataset, query.q, role=role), shown)
    if query.label:
        pk, value = query.label
        examples = examples.filter(**{f"label_{pk}__isnull": True} if value == "none"
                                   else {f"label_{pk}": LABEL_VALUES[value]})
    if query.disagree and len(shown) > 1:
        examples = examples.filter(_disagreeing(shown))
    page = Paginator(examples.defer("search_text"), PER_PAGE).get_page(query.page)
    rows = []
    for ex in page:
        labels = [getattr(ex, f"label_{ls.pk}") for ls in shown]
        rows.append({"example": ex, "fields": visible_fields(role, ex.fields), "labels": labels,
                     "disagree": len({v for v in labels if v is not None}) > 1})
    return DataView(query=query, readable=readable, shown=shown, page=page, rows=rows,
                    reads_labels=reads_labels(role))


def _set_ids(raw: str, name: str, known: dict[int, LabelSet]) -> list[LabelSet]:
    sets = []
    for part in (p.strip() for p in raw.split(",")):
        pk = int(part) if part.isdigit() else None
        if pk not in known:
            raise ValidationError({name: f"{part!r} is not a label set of this dataset you may read"})
        if known[pk] not in sets:
            sets.append(known[pk])
    return sets


def api_examples(user: User, dataset: Dataset, params: Mapping[str, Any]) -> tuple[QuerySet[Example], list[LabelSet]]:
    """The examples endpoint's read: `search`; `labelsets=A,B` (each example's labels in those sets);
    `disagree=A,B` (only examples that two of those sets label differently); `label=A:true|false|none` (only
    examples set A labels so). Unlike the page, a malformed or unreadable parameter is a ValidationError
    naming it; annotators label blind, so any label parameter is refused. Returns the examples (each
    annotated `label_<id>` for every set named) and the sets named, in order."""
    role = role_of(user, dataset)
    asked = [k for k in ("labelsets", "disagree", "label") if k in params]
    if asked and not reads_labels(role):
        raise PermissionDenied("annotators label blind: label sets are not shown to them")
    known = {ls.pk: ls for ls in dataset_label_sets(user, dataset)} if asked else {}
    shown = _set_ids(params["labelsets"], "labelsets", known) if "labelsets" in params else []
    disagree = _set_ids(params["disagree"], "disagree", known) if "disagree" in params else []
    if "disagree" in params and len(disagree) < 2:
        raise ValidationError({"disagree": "name two or more label sets: A,B"})
    label = None
    if "label" in params:
        pk, _, value = str(params["label"]).partition(":")
        if value not in LABEL_VALUES:
            raise ValidationError({"label": "write SET:true, SET:false or SET:none"})
        label = (_set_ids(pk, "label", known)[0], value)
    named = list(dict.fromkeys([*shown, *disagree, *([label[0]] if label else [])]))
    examples = _with_labels(examples_of(dataset, str(params.get("search") or ""), role=role), named)
    if label:
        ls, value = label
        examples = examples.filter(**{f"label_{ls.pk}__isnull": True} if value == "none"
                                   else {f"label_{ls.pk}": LABEL_VALUES[value]})
    if disagree:
        examples = examples.filter(_disagreeing(disagree))
    return examples.defer("search_text", "hidden_text"), shown
