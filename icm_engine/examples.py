"""Examples and their loaders (JSON array, JSONL, CSV), with gold labels kept apart.

A loaded file becomes a :class:`LoadedData`: the examples the search may see, and the gold labels,
which only evaluation and review read. Bad input raises :class:`DataError` naming the file, the
1-based row and the field of each problem; nothing is returned half-loaded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .problems import MAX_PROBLEMS, DataError, Problem
from .tables import NO_LIMITS, TableLimits, is_table, read_dataset_folder, read_table_file

# Every form of a gold label found in the paper's released files (data/paper/README.md).
_TRUE_FORMS: tuple[Any, ...] = (True, 1, "1", "True", "true")
_FALSE_FORMS: tuple[Any, ...] = (False, 0, "0", "False", "false")
# How deep a row's values may nest (a row's own object is level 1). Prompts read flat fields; deeper nesting
# only costs (Python's JSON reader and every walk over a value recurse), and past about a thousand levels
# it fails with a RecursionError instead of an answer.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Example:
    """One item to label. It carries no gold label: the search only ever sees these."""

    uid: int
    id: Any
    fields: dict[str, Any]
    group: str
    key: str | None = None

    def text(self, name: str) -> str:
        value = self.fields.get(name)
        return "" if value is None else str(value)


@dataclass
class LoadedData:
    examples: list[Example]
    gold: dict[Any, bool] = field(default_factory=dict)
    source: str = ""

    def gold_list(self) -> list[bool | None]:
        return [self.gold.get(ex.id) for ex in self.examples]


def parse_label(value: Any) -> bool:
    """Normalise a label in one of the accepted forms; raise ValueError otherwise."""
    # bool is a subclass of int: check identity-like forms first so 1.0 or 2 are rejected.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return value == 1
    elif isinstance(value, str):
        if value in _TRUE_FORMS:
            return True
        if value in _FALSE_FORMS:
            return False
    raise ValueError(
        f"label {value!r} is not one of 1, 0, true, false, \"1\", \"0\", \"True\", \"False\""
    )


def read_rows(path: str | Path, data: bytes | None = None, *, limits: TableLimits = NO_LIMITS) -> list[dict[str, Any]]:
    """Read a JSON array, JSONL, CSV or Parquet file, a `datasets` folder or a zip of one into a list of row
    dicts (format from the suffix, else the content). `limits` bound what a compressed table may expand to."""
    path = Path(path)
    name = path.name
    if data is None and path.is_dir():
        return read_dataset_folder(path, limits=limits)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError([Problem(name, None, None, f"cannot read file: {exc.strerror}")]) from exc
    if is_table(name, data):
        return read_table_file(name, data, limits=limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError([Problem(name, None, None, f"not UTF-8 text (byte {exc.start})")]) from exc
    if not text.strip():
        raise DataError([Problem(name, None, None, "the file is empty")])
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(name, text)
    if suffix == ".jsonl":
        return _read_jsonl(name, text)
    if suffix == ".json":
        return _read_json(name, text)
    # Unknown suffix: sniff the content.
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _read_json(name, text)
    if stripped.startswith("{"):
        return _read_jsonl(name, text)
    return _read_csv(name, text)


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token} is too large a number")
    return value


def _loads(text: str) -> Any:
    """Strict JSON: Python's reader would take NaN, Infinity and 1e400, which no database stores as JSON."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')


def _too_deep(text: str, limit: int, offset: int = 0) -> int | None:
    """The 1-based element of `text`'s value (counted at nesting level `offset` + 1: a JSON array's rows are
    level 1 below the array) whose nesting passes `limit` levels, or None; for text too deep for Python's
    JSON reader. Brackets inside strings do not count."""
    import numpy as np

    b = np.frombuffer(_STRING.sub('""', text).encode("utf-8"), dtype=np.uint8)
    opens, closes = (b == ord("[")) | (b == ord("{")), (b == ord("]")) | (b == ord("}"))
    depth = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32))
    deep = np.flatnonzero(depth > limit + offset)
    if deep.size == 0:
        return None
    starts = opens[: deep[0] + 1] & (depth[: deep[0] + 1] == offset + 1)
    return max(int(starts.sum()), 1)


def json_depth(value: Any) -> int:
    """How deep `value` nests (a scalar 0, an object of scalars 1), without recursion; counted up to one past
    MAX_JSON_DEPTH."""
    deepest, level, frontier = 0, 0, [value]
    while frontier and deepest <= MAX_JSON_DEPTH:
        level += 1
        nested = [v for v in frontier if isinstance(v, dict | list)]
        if not nested:
            break
        deepest = level
        frontier = [c for v in nested for c in (v.values() if isinstance(v, dict) else v)]
    return deepest


def _nesting_problem(name: str, row: int | None) -> Problem:
    return Problem(name, row, None, f"the row's values nest deeper than {MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH): "
                                    "flatten them into fields")


def _read_json(name: str, text: str) -> list[dict[str, Any]]:
    try:
        rows = _loads(text)
    except RecursionError:
        raise DataError([_nesting_problem(name, _too_deep(text, MAX_JSON_DEPTH, offset=1))]) from None
    except json.JSONDecodeError as exc:
        # A syntax error has no row yet (the array never parsed): name the line and column instead.
        raise DataError([Problem(name, None, None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: "
                                                   f"{exc.msg}")]) from exc
    except ValueError as exc:
        raise DataError([Problem(name, None, None, f"invalid JSON: {exc}")]) from exc
    if isinstance(rows, dict):
        raise DataError([Problem(name, None, None, "expected a JSON array of objects, got one object")])
    if not isinstance(rows, list):
        raise DataError([Problem(name, None, None, "expected a JSON array of objects")])
    problems = [
        Problem(name, i, None, f"expected an object, got {type(r).__name__}") if not isinstance(r, dict)
        else _nesting_problem(name, i)
        for i, r in enumerate(rows, start=1)
        if not isinstance(r, dict) or json_depth(r) > MAX_JSON_DEPTH
    ]
    if problems:
        raise DataError(problems[:MAX_PROBLEMS])
    if not rows:
        raise DataError([Problem(name, None, None, "the file holds no rows")])
    return rows


def _read_jsonl(name: str, text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except RecursionError:
            problems.append(_nesting_problem(name, lineno))
            continue
        except json.JSONDecodeError as exc:
            problems.append(Problem(name, lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except ValueError as exc:
            problems.append(Problem(name, lineno, None, f"invalid JSON: {exc}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(name, lineno, None, f"expected an object, got {type(obj).__name__}"))
            continue
        if json_depth(obj) > MAX_JSON_DEPTH:
            problems.append(_nesting_problem(name, lineno))
            continue
        rows.append(obj)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems[:MAX_PROBLEMS])
    return rows


def _read_csv(name: str, text: str) -> list[dict[str, Any]]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = reader.fieldnames
        if not header:
            raise DataError([Problem(name, 1, None, "CSV has no header row")])
        if len(set(header)) != len(header):
            raise DataError([Problem(name, 1, None, "CSV header repeats a column name")])
        rows: list[dict[str, Any]] = []
        problems: list[Problem] = []
        for row in reader:
            # Row numbers are the CSV's data rows, 1-based, so they match JSON rows of the same file.
            rowno = len(rows) + 1
            if None in row:
                problems.append(Problem(name, rowno, None, "more cells than header columns"))
            elif any(v is None for v in row.values()):
                problems.append(Problem(name, rowno, None, "fewer cells than header columns"))
            rows.append({k: v for k, v in row.items() if k is not None})
            if len(problems) >= MAX_PROBLEMS:
                break
    except csv.Error as exc:
        raise DataError([Problem(name, None, None, f"invalid CSV: {exc}")]) from exc
    if problems:
        raise DataError(problems)
    if not rows:
        raise DataError([Problem(name, None, None, "the file holds no rows")])
    return rows


def build_examples(
    rows: Sequence[dict[str, Any]],
    source: str,
    required: Iterable[str],
    label_field: str = "label",
    require_gold: bool = False,
    may_be_empty: Iterable[str] = (),
) -> LoadedData:
    """Validate rows and split them into examples (no gold) and gold labels.

    `id` is optional (else the 0-based row position), `consistency_id` is optional (else each
    example is its own group). All problems up to 20 are collected before raising.
    """
    required = list(required)
    may_be_empty = set(may_be_empty)
    problems: list[Problem] = []
    examples: list[Example] = []
    gold: dict[Any, bool] = {}
    seen_ids: dict[Any, int] = {}
    for pos, row in enumerate(rows):
        rowno = pos + 1
        for name in required:
            value = row.get(name)
            if value is None or (isinstance(value, str) and not value.strip() and name not in may_be_empty):
                problems.append(Problem(source, rowno, name, "required field is missing or empty"))
            elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
                problems.append(Problem(source, rowno, name, f"expected text, got {type(value).__name__}"))
        for name, value in row.items():
            # No database stores NUL in text (PostgreSQL refuses it), nor a lone surrogate (a JSON escape
            # such as \ud800 with no pair: not Unicode text), and no prompt needs either.
            found = _unstorable(str(name)) or _unstorable(value)
            if found:
                problems.append(Problem(source, rowno, _UNSTORABLE.sub("?", str(name)),
                                        "contains a NUL character (\\x00)" if found == "\x00" else
                                        "contains a lone surrogate (an escape such as \\ud800 without its pair)"))
        ex_id: Any = row.get("id", pos)
        if ex_id is None or ex_id == "":
            ex_id = pos
        if isinstance(ex_id, (dict, list, float, bool)):
            problems.append(Problem(source, rowno, "id", "id must be a string or an integer"))
            ex_id = pos
        if ex_id in seen_ids:
            problems.append(Problem(source, rowno, "id", f"duplicate id {ex_id!r} (first at row {seen_ids[ex_id]})"))
        seen_ids.setdefault(ex_id, rowno)
        group_raw = row.get("consistency_id")
        if isinstance(group_raw, (dict, list)):
            problems.append(Problem(source, rowno, "consistency_id", "must be a string or a number"))
            group_raw = None
        group = f"#row{pos}" if group_raw is None or group_raw == "" else str(group_raw)
        if label_field in row and row[label_field] is not None and row[label_field] != "":
            try:
                gold[ex_id] = parse_label(row[label_field])
            except ValueError as exc:
                problems.append(Problem(source, rowno, label_field, str(exc)))
        elif require_gold:
            problems.append(Problem(source, rowno, label_field, "a gold label is required here"))
        fields = {k: v for k, v in row.items() if k != label_field}
        examples.append(Example(uid=pos, id=ex_id, fields=fields, group=group))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems[:MAX_PROBLEMS])
    return LoadedData(examples=examples, gold=gold, source=source)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> str | None:
    """The first character of a value (or of a key within it) that no database stores as text, if any."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return found.group() if found else None
    if isinstance(value, dict):
        return next((c for k, v in value.items() for c in (_unstorable(str(k)), _unstorable(v)) if c), None)
    if isinstance(value, list):
        return next((c for v in value if (c := _unstorable(v))), None)
    return None


def limit_examples(data: LoadedData, limit: int | None) -> LoadedData:
    """Keep the first `limit` examples, in whole consistency groups (groups in order of first row)."""
    if limit is None or limit >= len(data.examples):
        return data
    if limit <= 0:
        raise ValueError("--limit must be positive")
    members: dict[str, list[Example]] = {}
    for ex in data.examples:
        members.setdefault(ex.group, []).append(ex)
    keep: set[int] = set()
    for group_members in members.values():
        if keep and len(keep) + len(group_members) > limit:
            break
        keep.update(ex.uid for ex in group_members)
        if len(keep) >= limit:
            break
    kept = [ex for ex in data.examples if ex.uid in keep]
    renum = [Example(uid=i, id=ex.id, fields=ex.fields, group=ex.group, key=ex.key) for i, ex in enumerate(kept)]
    ids = {ex.id for ex in kept}
    return LoadedData(renum, {k: v for k, v in data.gold.items() if k in ids}, data.source)


def load_labels(path: str | Path) -> dict[Any, bool | None]:
    """Read a label set (JSONL or CSV rows of `id` and `label`; null labels allowed) keyed by id."""
    rows = read_rows(path)
    name = Path(path).name
    out: dict[Any, bool | None] = {}
    problems: list[Problem] = []
    for rowno, row in enumerate(rows, start=1):
        if "id" not in row:
            problems.append(Problem(name, rowno, "id", "required field is missing"))
            continue
        ex_id = row["id"]
        if ex_id in out:
            problems.append(Problem(name, rowno, "id", f"duplicate id {ex_id!r}"))
        value = row.get("label")
        if value is None or value == "":
            out[ex_id] = None
            continue
        try:
            out[ex_id] = parse_label(value)
        except ValueError as exc:
            problems.append(Problem(name, rowno, "label", str(exc)))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems)
    return out


def match_ids(examples: Sequence[Example], labels: dict[Any, Any], source: str) -> list[Any]:
    """Align a label set with examples (None where it has no label), tolerating ids written as str vs
    int (CSV reads text). An id the examples do not have is an error: the file belongs elsewhere."""
    by_str = {str(k): v for k, v in labels.items()}
    known = {str(ex.id) for ex in examples}
    unknown = [k for k in labels if str(k) not in known]
    if unknown:
        raise DataError([Problem(source, None, "id", f"unknown example id {unknown[0]!r}"
                                 + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))])
    return [labels[ex.id] if ex.id in labels else by_str.get(str(ex.id)) for ex in examples]
