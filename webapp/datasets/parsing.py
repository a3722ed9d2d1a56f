"""Reading uploaded files into plain data, with every problem located by file, row and field.

Nothing here touches the database: services call these first, so bad input is rejected before any
write. Dataset files go through the engine's own loaders (the same rules as `icm label`), so a file
the CLI accepts is a file the web app accepts.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from django.conf import settings

from icm_engine.facade import (
    MAX_PROBLEMS,
    PRESETS,
    DataError,
    LoadedData,
    Problem,
    TableLimits,
    Task,
    get_task,
    load_dataset,
    parse_label,
    read_rows,
)

# A leading apostrophe is how our CSV exports neutralise cells a spreadsheet would run as formulas.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_filename(filename: str) -> str:
    name = PurePath(str(filename or "upload").replace("\\", "/")).name or "upload"
    return name[:255]


def check_size(filename: str, size: int) -> None:
    limit = settings.ICM_MAX_UPLOAD_BYTES
    if size > limit:
        raise DataError([Problem(filename, None, None, f"the file is {size / 1048576:.1f} MB; uploads are limited "
                                                       f"to {limit / 1048576:.0f} MB")])
    if size == 0:
        raise DataError([Problem(filename, None, None, "the file is empty")])


def read_upload(upload: Any) -> bytes:
    """The bytes of an uploaded file, refused before reading when it is over the cap."""
    name = safe_filename(getattr(upload, "name", "upload"))
    check_size(name, upload.size)
    return upload.read()


def read_file_rows(filename: str, data: bytes) -> list[dict[str, Any]]:
    """An upload's rows, within the row cap. A compressed table (Parquet, a zipped `datasets` folder) may
    expand to no more data than an upload may hold, so its limits are checked before it is unpacked."""
    cap = settings.ICM_MAX_ROWS
    rows = read_rows(filename, data, limits=TableLimits(max_bytes=settings.ICM_MAX_UPLOAD_BYTES, max_rows=cap))
    if len(rows) > cap:
        raise DataError([Problem(filename, None, None, f"the file holds {len(rows)} rows; the limit is {cap}")])
    return rows


@dataclass
class ParsedDataset:
    filename: str
    task: Task
    consistency: str
    loaded: LoadedData
    field_names: list[str]

    def preview(self, sample: int = 5) -> dict[str, Any]:
        """What the user confirms before anything is written."""
        gold = self.loaded.gold
        n_true = sum(1 for v in gold.values() if v)
        groups = len({ex.group for ex in self.loaded.examples})
        return {
            "filename": self.filename,
            "rows": len(self.loaded.examples),
            "fields": self.field_names,
            "groups": groups,
            "task": self.task.name,
            "template": self.task.template,
            "consistency": self.consistency,
            "label_balance": {
                "true": n_true,
                "false": len(gold) - n_true,
                "unlabeled": len(self.loaded.examples) - len(gold),
            },
            "sample": [
                {"id": ex.id, "group": ex.group, "consistency_key": ex.key,
                 "fields": {k: _shorten(v) for k, v in ex.fields.items()}}
                for ex in self.loaded.examples[:sample]
            ],
        }


def _shorten(value: Any, limit: int = 300) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def describe_consistency(task: Task) -> str:
    return f"key:{task.key_field}" if task.consistency == "key" else task.consistency


def parse_dataset_file(
    filename: str,
    data: bytes,
    task: str,
    template: str | None = None,
    consistency: str | None = None,
) -> ParsedDataset:
    """Validate a dataset file for a task preset; raise DataError naming each problem's row and field."""
    filename = safe_filename(filename)
    check_size(filename, len(data))
    if task not in PRESETS:
        raise DataError([Problem(filename, None, "task", f"unknown task {task!r}; choose one of {', '.join(PRESETS)}")])
    try:
        engine_task = get_task(task, template=template or None, consistency=consistency or None)
    except ValueError as exc:
        field = "consistency" if "consistency" in str(exc) else "template"
        raise DataError([Problem(filename, None, field, str(exc))]) from exc
    rows = read_file_rows(filename, data)
    loaded = load_dataset(filename, engine_task, rows=rows)
    _check_stored_forms(filename, loaded)
    field_names = list(dict.fromkeys(k for row in rows for k in row if k != "label"))
    return ParsedDataset(filename, engine_task, describe_consistency(engine_task), loaded, field_names)


def _check_stored_forms(filename: str, loaded: LoadedData) -> None:
    """Ids are stored as text: 12 and "12" in one file would be the same example."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for row, ex in enumerate(loaded.examples, start=1):
        text = str(ex.id)
        if len(text) > 255:
            problems.append(Problem(filename, row, "id", "id is longer than 255 characters"))
        elif text in seen:
            problems.append(Problem(filename, row, "id", f"duplicate id {text!r} (first at row {seen[text]})"))
        seen.setdefault(text, row)
        if len(ex.group) > 255:
            problems.append(Problem(filename, row, "consistency_id", "longer than 255 characters"))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems)


def normalise_id(value: Any) -> str | None:
    """An example id as stored (text), or None when it cannot be an id."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
            value = value[1:]
        return value
    return None


def _parse_score(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("score must be a number")
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
        value = value[1:]
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise ValueError(f"score {value!r} is not a finite number")
    return score


@dataclass
class ParsedLabels:
    filename: str
    # (external id, value, score) in file order; rows whose label is empty/null are left unlabeled.
    labels: list[tuple[str, bool, float | None]]
    skipped: int

    def balance(self) -> dict[str, int]:
        counts = Counter(v for _, v, _ in self.labels)
        return {"true": counts[True], "false": counts[False]}


def parse_label_file(filename: str, data: bytes, known_ids: set[str]) -> ParsedLabels:
    """Rows of `id` and `label` (optional `score`; other columns ignored, so our exports re-import).

    An explicit null or empty label leaves that example unlabeled (a partial label set); a missing
    `label` column is an error, as is an id the dataset does not have or an id given twice.
    """
    filename = safe_filename(filename)
    check_size(filename, len(data))
    rows = read_file_rows(filename, data)
    problems: list[Problem] = []
    labels: list[tuple[str, bool, float | None]] = []
    seen: dict[str, int] = {}
    skipped = 0
    for rowno, row in enumerate(rows, start=1):
        row_problems: list[Problem] = []
        ex_id = None
        if "id" not in row or row["id"] is None or row["id"] == "":
            row_problems.append(Problem(filename, rowno, "id", "required field is missing or empty"))
        else:
            ex_id = normalise_id(row["id"])
            if ex_id is None:
                row_problems.append(Problem(filename, rowno, "id", "id must be a string or an integer"))
            elif ex_id not in known_ids:
                row_problems.append(Problem(filename, rowno, "id", f"unknown example id {ex_id!r}: the dataset "
                                                                   "has no such example"))
            elif ex_id in seen:
                row_problems.append(Problem(filename, rowno, "id", f"duplicate id {ex_id!r} (first at row "
                                                                   f"{seen[ex_id]})"))
            else:
                seen[ex_id] = rowno
        value: bool | None = None
        if "label" not in row:
            row_problems.append(Problem(filename, rowno, "label", "required field is missing"))
        elif row["label"] is not None and row["label"] != "":
            try:
                value = parse_label(row["label"])
            except ValueError as exc:
                row_problems.append(Problem(filename, rowno, "label", str(exc)))
        score = None
        try:
            score = _parse_score(row.get("score"))
        except ValueError as exc:
            row_problems.append(Problem(filename, rowno, "score", str(exc)))
        problems.extend(row_problems)
        if len(problems) >= MAX_PROBLEMS:
            break
        if row_problems:
            continue
        if value is None:
            skipped += 1
        else:
            assert ex_id is not None
            labels.append((ex_id, value, score))
    if problems:
        raise DataError(problems[:MAX_PROBLEMS])
    if not labels:
        raise DataError([Problem(filename, None, "label", "no row holds a label")])
    return ParsedLabels(filename, labels, skipped)


def fitting_tasks(filename: str, data: bytes, task: str) -> list[str]:
    """The task presets other than `task` whose fields a rejected file's rows all have: what its upload
    error suggests. Empty where the rows cannot be read or none fits."""
    try:
        rows = read_file_rows(safe_filename(filename), data)
    except DataError:
        return []
    common = set.intersection(*(set(r) for r in rows)) if rows else set()
    return [name for name in PRESETS if name != task and set(get_task(name).required_fields("verdict")) <= common]
