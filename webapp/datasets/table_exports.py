"""Typed exports: a label set or a whole dataset as Parquet, or as a zipped Hugging Face `datasets` folder.

Labels are booleans with nulls where a set has no label (Parquet), or the `datasets` convention for a label,
a `ClassLabel` with the names False and True (0 and 1, null where unlabeled), so `features` says which
columns are labels. Both carry each label column's provenance: Parquet in the schema's metadata under
`icm_studio`, `datasets` in the dataset's description. Written by pyarrow and `datasets` themselves.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .exports import id_as_given, label_column, original_id, provenance
from .models import Dataset, Example, Label, LabelSet

METADATA_KEY = b"icm_studio"
CLASS_NAMES = ["False", "True"]


def score_column(label_set: LabelSet) -> str:
    return f"score:{label_set.name}@v{label_set.version}"


def _column(values: list[Any]) -> pa.Array:
    """One typed column from a field's values; a field whose rows mix types (or nest) becomes text, the
    nested ones as JSON, so every export reads back as the flat rows an import takes."""
    if not any(isinstance(v, (dict, list)) for v in values):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
            pass
    return pa.array([None if v is None else _utf8(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
                     for v in values], type=pa.string())


def _utf8(text: str) -> str:
    """Text Arrow can hold: a lone surrogate (which a JSON file may spell as an escape) becomes '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def label_set_table(label_set: LabelSet) -> pa.Table:
    """A label set's rows as the JSONL and CSV exports give them: id, label, score and provenance."""
    labels = list(Label.objects.filter(label_set=label_set).select_related("example").order_by("example__position"))
    prov = provenance(label_set)
    n = len(labels)
    table = pa.table({
        "id": _column([original_id(label.example) for label in labels]),
        "label": pa.array([label.value for label in labels], type=pa.bool_()),
        "score": pa.array([label.score for label in labels], type=pa.float64()),
        "kind": pa.array([prov["kind"]] * n, type=pa.string()),
        "label_set": pa.array([prov["label_set"]] * n, type=pa.string()),
        "version": pa.array([prov["version"]] * n, type=pa.int64()),
        "source": pa.array([prov["source"]] * n, type=pa.string()),
        "run": pa.array([prov["run"]] * n, type=pa.int64()),
        "model": pa.array([prov["model"]] * n, type=pa.string()),
        "configuration": pa.array([json.dumps(prov["configuration"], ensure_ascii=False)] * n, type=pa.string()),
    })
    return table.replace_schema_metadata({METADATA_KEY: json.dumps({"labels": {"label": prov}}).encode()})


def dataset_table(dataset: Dataset, label_sets: list[LabelSet], *, hidden: frozenset[str] = frozenset()) -> pa.Table:
    """Every example with its fields (but the `hidden` ones: the label-like fields an annotator never sees), one
    boolean column per label set (null where the set has none) and, for a set with scores, its scores beside it."""
    examples = list(Example.objects.filter(dataset=dataset).order_by("position").values_list(
        "pk", "position", "external_id", "fields"))
    fields = [f for f in dataset.field_names if f not in ("id", "consistency_id") and f not in hidden]
    columns: dict[str, pa.Array] = {
        "id": _column([id_as_given(position, external_id, values) for _, position, external_id, values
                       in examples]),
        "consistency_id": _column([values.get("consistency_id") for *_, values in examples]),
    }
    for name in fields:
        columns[name] = _column([values.get(name) for *_, values in examples])
    described: dict[str, Any] = {}
    for label_set in label_sets:
        by_example = {pk: (value, score) for pk, value, score in
                      Label.objects.filter(label_set=label_set).values_list("example_id", "value", "score")}
        pairs = [by_example.get(pk, (None, None)) for pk, *_ in examples]
        columns[label_column(label_set)] = pa.array([value for value, _ in pairs], type=pa.bool_())
        described[label_column(label_set)] = provenance(label_set)
        if any(score is not None for _, score in pairs):
            columns[score_column(label_set)] = pa.array([score for _, score in pairs], type=pa.float64())
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps({"labels": described}).encode()})


def label_columns(table: pa.Table) -> dict[str, Any]:
    """The label columns a table made here describes, with each one's provenance."""
    metadata = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(metadata)["labels"] if metadata else {}


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def datasets_zip(table: pa.Table, folder: str, description: str) -> bytes:
    """The table saved with `Dataset.save_to_disk` into `folder`, zipped: `load_from_disk` opens it unzipped.
    Label columns are `ClassLabel(names=["False", "True"])`, so `features` names them."""
    import datasets

    labels = label_columns(table)
    for name in labels:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.compute.cast(table.column(name), pa.int64()))
    features = datasets.Features.from_arrow_schema(table.schema)
    for name in labels:
        features[name] = datasets.ClassLabel(names=CLASS_NAMES)
    info = datasets.DatasetInfo(description=description + "\nLabel columns and their provenance: "
                                + json.dumps(labels, ensure_ascii=False), features=features)
    dataset = datasets.Dataset(table.cast(features.arrow_schema), info=info)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="icm-export-") as tmp:
        root = Path(tmp) / folder
        progress = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            dataset.save_to_disk(str(root))
        finally:
            if progress:
                datasets.enable_progress_bars()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                archive.write(path, str(path.relative_to(Path(tmp))))
    return buffer.getvalue()
