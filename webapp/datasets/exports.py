"""Streaming exports of a label set or a whole dataset as JSONL or CSV, and the columns every export shares.

Every label row carries its provenance (kind, label set, version, run, model, configuration). CSV
cells a spreadsheet would evaluate as a formula are prefixed with an apostrophe; the label-set import
strips it again, so an export re-imports to the same labels.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .models import Dataset, Example, Label, LabelSet
from .parsing import FORMULA_PREFIXES

TEXT_FORMATS = ("jsonl", "csv")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise(cell: Any) -> Any:
    """Keep a spreadsheet from running a cell as a formula (OWASP CSV injection); plain numbers stay."""
    if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


def original_id(example: Example) -> Any:
    """The id as the file gave it (an integer stays an integer in JSON), else the row position."""
    return id_as_given(example.position, example.external_id, example.fields)


def id_as_given(position: int, external_id: str, fields: dict[str, Any]) -> Any:
    value = fields.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and str(value) == external_id:
        return value
    if value is None and external_id == str(position):
        return position
    return external_id


def provenance(label_set: LabelSet) -> dict[str, Any]:
    return {
        "kind": label_set.kind,
        "label_set": label_set.name,
        "version": label_set.version,
        "source": label_set.source,
        "run": label_set.from_run,
        "model": label_set.model,
        "configuration": label_set.configuration,
    }


LABEL_COLUMNS = ["id", "label", "score", "kind", "label_set", "version", "source", "run", "model", "configuration"]


def label_set_rows(label_set: LabelSet) -> Iterator[dict[str, Any]]:
    prov = provenance(label_set)
    labels = Label.objects.filter(label_set=label_set).select_related("example").order_by("example__position")
    for label in labels.iterator(chunk_size=2000):
        yield {"id": original_id(label.example), "label": label.value, "score": label.score, **prov}


def dataset_columns(dataset: Dataset, label_sets: list[LabelSet]) -> list[str]:
    fields = [f for f in dataset.field_names if f not in ("id", "consistency_id")]
    return ["id", "consistency_id", *fields, *(label_column(ls) for ls in label_sets)]


def label_column(label_set: LabelSet) -> str:
    return f"label:{label_set.name}@v{label_set.version}"


def dataset_rows(dataset: Dataset, label_sets: list[LabelSet]) -> Iterator[dict[str, Any]]:
    """Each example with its fields and one column per label set (None where that set has no label)."""
    by_set = {
        ls.pk: dict(Label.objects.filter(label_set=ls).values_list("example_id", "value")) for ls in label_sets
    }
    fields = [f for f in dataset.field_names if f not in ("id", "consistency_id")]
    for ex in Example.objects.filter(dataset=dataset).order_by("position").iterator(chunk_size=2000):
        row: dict[str, Any] = {"id": original_id(ex), "consistency_id": ex.fields.get("consistency_id")}
        row.update({f: ex.fields.get(f) for f in fields})
        row.update({label_column(ls): by_set[ls.pk].get(ex.pk) for ls in label_sets})
        yield row


def render_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return neutralise(value)


def render_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([neutralise(c) for c in columns])
    yield flush()
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
        yield flush()


def render(rows: Iterable[dict[str, Any]], columns: list[str], fmt: str) -> Iterator[str]:
    if fmt == "csv":
        return render_csv(rows, columns)
    return render_jsonl(rows)


def filename_for(base: str, fmt: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "export"
    return f"{safe[:100]}.{fmt}"


def streaming_response(rows: Iterable[dict[str, Any]], columns: list[str], fmt: str, base: str):
    """A download of rows as JSONL or CSV, streamed so a large dataset never sits in memory."""
    from django.http import StreamingHttpResponse

    response = StreamingHttpResponse(render(rows, columns, fmt), content_type=f"{CONTENT_TYPES[fmt]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename_for(base, fmt)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
