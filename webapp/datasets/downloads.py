"""A download of a label set or a whole dataset in the format asked for: what the pages and the API serve.

Text formats stream (exports.py); typed formats are built whole by pyarrow and `datasets`
(table_exports.py), which a dataset within the upload limits keeps small.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse

from . import label_studio_export as lse
from . import permissions, table_exports
from .exports import (
    LABEL_COLUMNS,
    dataset_columns,
    dataset_rows,
    filename_for,
    label_set_rows,
    original_id,
    streaming_response,
)
from .models import Dataset, Example, Label, LabelSet, LabelSetKind
from .selectors import latest_gold

# Each format a download may take, with the name the pages show.
FORMATS = {
    "jsonl": "JSONL",
    "csv": "CSV",
    "parquet": "Parquet",
    "datasets": "Hugging Face datasets (zip)",
    "label-studio": "Label Studio JSON",
    "label-studio-config": "Label Studio labeling config",
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


def label_set_export(label_set: LabelSet, fmt: str, *, query: Mapping[str, Any] | None = None,
                     reads_labels: bool = True) -> HttpResponse:
    """One label set: its rows (id, label, score, provenance); as `datasets`, its examples with the set's
    label column, ready for a trainer; as Label Studio tasks, every example with the set's labels.
    `query`: the Label Studio export's options; `reads_labels`: whether the reader sees label-like fields."""
    base = f"{label_set.dataset.name}-{label_set.name}-v{label_set.version}"
    if fmt.startswith("label-studio"):
        return _label_studio(label_set.dataset, [label_set], fmt, base, query, reads_labels)
    if fmt == "parquet":
        return _binary_response(table_exports.parquet_bytes(table_exports.label_set_table(label_set)), fmt, base)
    if fmt == "datasets":
        table = table_exports.dataset_table(label_set.dataset, [label_set],
                                            hidden=frozenset() if reads_labels else permissions.LABEL_LIKE_FIELDS)
        return _binary_response(table_exports.datasets_zip(table, _folder_name(base), _describe(label_set.dataset)),
                                fmt, base)
    return streaming_response(label_set_rows(label_set), LABEL_COLUMNS, fmt, base)


def dataset_export(dataset: Dataset, fmt: str, *, query: Mapping[str, Any] | None = None) -> HttpResponse:
    """The whole dataset: every example's fields and one label column per label set, side by side (as Label
    Studio tasks: every set, but of gold only the latest version, as its ground truth)."""
    label_sets = list(LabelSet.objects.filter(dataset=dataset).order_by("kind", "name", "version"))
    if fmt.startswith("label-studio"):
        gold = latest_gold(dataset)
        chosen = [ls for ls in label_sets if ls.kind != LabelSetKind.GOLD or ls == gold]
        return _label_studio(dataset, chosen, fmt, dataset.name, query, True)
    if fmt in _BINARY:
        table = table_exports.dataset_table(dataset, label_sets)
        content = (table_exports.parquet_bytes(table) if fmt == "parquet"
                   else table_exports.datasets_zip(table, _folder_name(dataset.name), _describe(dataset)))
        return _binary_response(content, fmt, dataset.name)
    return streaming_response(dataset_rows(dataset, label_sets), dataset_columns(dataset, label_sets), fmt,
                              dataset.name)


def _describe(dataset: Dataset) -> str:
    return f"ICM Studio export of the dataset {dataset.name!r} (task {dataset.task})."


def _label_studio(dataset: Dataset, label_sets: list[LabelSet], fmt: str, base: str,
                  query: Mapping[str, Any] | None, reads_labels: bool) -> HttpResponse:
    """Label Studio tasks (streamed), or the labeling config of a project for them."""
    fields = lse.template_fields(dataset.template)
    opts = lse.export_options(query, fields=fields)
    if fmt == "label-studio-config":
        response = HttpResponse(lse.labeling_config(fields, opts), content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename_for(base + "-config", "xml")}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    sets = [_exported(ls) for ls in label_sets]

    def tasks():
        for ex in Example.objects.filter(dataset=dataset).order_by("position").iterator(chunk_size=2000):
            fields_shown = ex.fields if reads_labels else permissions.visible_fields(None, ex.fields)
            data = {"id": original_id(ex), **{k: v for k, v in fields_shown.items() if k != "id"}}
            yield lse.task_of(ex.pk, data, sets, opts)

    response = StreamingHttpResponse(lse.render(tasks()), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename_for(base, "json")}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _exported(label_set: LabelSet) -> lse.ExportedSet:
    labels = {ex: (v, s) for ex, v, s in Label.objects.filter(label_set=label_set)
              .values_list("example_id", "value", "score")}
    if label_set.kind in (LabelSetKind.ICM, LabelSetKind.BASELINE):
        conf = label_set.configuration or {}
        log_odds = lse.scores_are_log_odds(from_run=label_set.from_run is not None, method=str(conf.get("method")),
                                           scores=(s for _, s in labels.values()))
        return lse.ExportedSet(labels, model_version=lse.model_version_of(
            name=label_set.name, version=label_set.version, kind=label_set.kind, configuration=conf,
            model=label_set.model, run=label_set.from_run, log_odds=log_odds), log_odds=log_odds)
    annotator = label_set.annotator
    return lse.ExportedSet(labels, ground_truth=label_set.kind == LabelSetKind.GOLD,
                           email=(annotator.email if annotator and label_set.kind == LabelSetKind.HUMAN else ""))
