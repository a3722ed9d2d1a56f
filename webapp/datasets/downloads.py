"""A download of a label set or a whole dataset in the format asked for: what the pages and the API serve.

Text formats stream (exports.py); typed formats are built whole by pyarrow and `datasets`
(table_exports.py), which a dataset within the upload limits keeps small.
"""

from __future__ import annotations

from django.http import HttpResponse

from . import table_exports
from .exports import LABEL_COLUMNS, dataset_columns, dataset_rows, filename_for, label_set_rows, streaming_response
from .models import Dataset, LabelSet

# Each format a download may take, with the name the pages show.
FORMATS = {
    "jsonl": "JSONL",
    "csv": "CSV",
    "parquet": "Parquet",
    "datasets": "Hugging Face datasets (zip)",
}
_BINARY = {
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "datasets": ("application/zip", "zip"),
}


def _binary_response(content: bytes, fmt: str, base: str) -> HttpResponse:
    content_type, suffix = _BINARY[fmt]
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename_for(base, suffix)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _folder_name(base: str) -> str:
    return filename_for(base, "x")[:-2]


def label_set_export(label_set: LabelSet, fmt: str) -> HttpResponse:
    """One label set: its rows (id, label, score, provenance); as `datasets`, its examples with the set's
    label column, ready for a trainer."""
    base = f"{label_set.dataset.name}-{label_set.name}-v{label_set.version}"
    if fmt == "parquet":
        return _binary_response(table_exports.parquet_bytes(table_exports.label_set_table(label_set)), fmt, base)
    if fmt == "datasets":
        table = table_exports.dataset_table(label_set.dataset, [label_set])
        return _binary_response(table_exports.datasets_zip(table, _folder_name(base), _describe(label_set.dataset)),
                                fmt, base)
    return streaming_response(label_set_rows(label_set), LABEL_COLUMNS, fmt, base)


def dataset_export(dataset: Dataset, fmt: str) -> HttpResponse:
    """The whole dataset: every example's fields and one label column per label set, side by side."""
    label_sets = list(LabelSet.objects.filter(dataset=dataset).order_by("kind", "name", "version"))
    if fmt in _BINARY:
        table = table_exports.dataset_table(dataset, label_sets)
        content = (table_exports.parquet_bytes(table) if fmt == "parquet"
                   else table_exports.datasets_zip(table, _folder_name(dataset.name), _describe(dataset)))
        return _binary_response(content, fmt, dataset.name)
    return streaming_response(dataset_rows(dataset, label_sets), dataset_columns(dataset, label_sets), fmt,
                              dataset.name)


def _describe(dataset: Dataset) -> str:
    return f"ICM Studio export of the dataset {dataset.name!r} (task {dataset.task})."
