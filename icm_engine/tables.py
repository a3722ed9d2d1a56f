"""Parquet files and Hugging Face `datasets` folders as rows, read by pyarrow and `datasets` themselves.

A table's columns must be flat: text, numbers, booleans or nulls, as a JSON row's fields are. Nested,
binary and temporal columns are refused naming the column, since a prompt reads a field as text and a
silent conversion would change what the model sees. A `datasets` folder arrives as a folder (the CLI) or
as a zip of one (uploads); a zip's members must stay inside its folder and its contents within the
limits a caller gives, so a small archive cannot expand past what an upload may hold.
"""

from __future__ import annotations

import math
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .problems import MAX_PROBLEMS, DataError, Problem

PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
TABLE_SUFFIXES = (".parquet", ".zip")
# `save_to_disk` writes one of these beside its Arrow files: a Dataset's state, or a DatasetDict's splits.
_DATASET_MARKERS = ("state.json", "dataset_dict.json")
_MAX_ZIP_MEMBERS = 10_000


@dataclass(frozen=True, kw_only=True)
class TableLimits:
    """What a table may expand to once read: its data's bytes (uncompressed) and its rows."""

    max_bytes: int | None = None
    max_rows: int | None = None


NO_LIMITS = TableLimits()


def is_table(name: str, data: bytes | None) -> bool:
    """Whether a file is a Parquet file or a zip, by its suffix or, for another suffix, its first bytes."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return True
    return data is not None and data[:4] in (PARQUET_MAGIC, ZIP_MAGIC)


def read_table_file(name: str, data: bytes, *, limits: TableLimits = NO_LIMITS) -> list[dict[str, Any]]:
    """The rows of an uploaded Parquet file or zipped `datasets` folder; DataError naming what is wrong."""
    if data[:4] == ZIP_MAGIC or (PurePosixPath(name).suffix.lower() == ".zip" and data[:4] != PARQUET_MAGIC):
        return _read_zipped_dataset(name, data, limits)
    return _read_parquet(name, data, limits)


def read_dataset_folder(path: Path, *, limits: TableLimits = NO_LIMITS) -> list[dict[str, Any]]:
    """The rows of a folder written by `datasets.Dataset.save_to_disk` (or a one-split DatasetDict)."""
    return _rows_of(path.name, _load_from_disk(path.name, path), limits)


def _read_parquet(name: str, data: bytes, limits: TableLimits) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def unreadable(exc: BaseException) -> DataError:
        return DataError([Problem(name, None, None, f"not a readable Parquet file ({_first_line(exc)}); a file "
                                                    "cut short or of another format reads so")])

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(exc) from exc
    # The footer says what the file expands to: checked before a row is decompressed.
    _check_size(name, parquet.metadata.num_rows, _parquet_bytes(parquet.metadata), limits)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(exc) from exc
    return _rows_of(name, table, limits)


def _parquet_bytes(metadata: Any) -> int:
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def _read_zipped_dataset(name: str, data: bytes, limits: TableLimits) -> list[dict[str, Any]]:
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError([Problem(name, None, None, f"not a readable zip file ({_first_line(exc)})")]) from exc
    with archive, tempfile.TemporaryDirectory(prefix="icm-upload-") as tmp:
        root = Path(tmp)
        _extract_safely(name, archive, root, limits)
        folder = _dataset_folder(name, root)
        return _rows_of(name, _load_from_disk(name, folder), limits)


def _extract_safely(name: str, archive: zipfile.ZipFile, root: Path, limits: TableLimits) -> None:
    """Every member a plain file or folder under the archive's own root, and the whole within the limits."""
    members = archive.infolist()
    if len(members) > _MAX_ZIP_MEMBERS:
        raise DataError([Problem(name, None, None, f"the zip holds {len(members)} entries; the limit is "
                                                   f"{_MAX_ZIP_MEMBERS}")])
    problems: list[Problem] = []
    for member in members:
        path = PurePosixPath(member.filename.replace("\\", "/"))
        mode = member.external_attr >> 16
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            problems.append(Problem(name, None, member.filename[:200], "a path outside the zip's folder"))
        elif stat.S_ISLNK(mode):
            problems.append(Problem(name, None, member.filename[:200], "a link: a datasets folder holds files"))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems)
    expanded = sum(m.file_size for m in members)
    if limits.max_bytes is not None and expanded > limits.max_bytes:
        raise DataError([Problem(name, None, None, f"the zip expands to {expanded / 1048576:.1f} MB; the limit "
                                                   f"is {limits.max_bytes / 1048576:.0f} MB")])
    try:
        archive.extractall(root)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError([Problem(name, None, None, f"the zip cannot be unpacked ({_first_line(exc)}); a "
                                                   "file cut short reads so")]) from exc


def _dataset_folder(name: str, root: Path) -> Path:
    """The folder `save_to_disk` wrote: the zip's root or the one folder in it that holds its markers."""
    found = sorted({p.parent for marker in _DATASET_MARKERS for p in root.rglob(marker)}, key=lambda p: len(p.parts))
    # A DatasetDict's split folders hold state.json too; the outermost folder is the one that was saved.
    if not found:
        raise DataError([Problem(name, None, None, "no datasets folder in the zip: zip the folder that "
                                                   "`Dataset.save_to_disk` wrote (its state.json and .arrow files)")])
    return found[0]


def _load_from_disk(name: str, folder: Path) -> Any:
    import datasets
    import pyarrow as pa

    try:
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=True)
    except FileNotFoundError as exc:
        raise DataError([Problem(name, None, None, f"not a datasets folder ({_first_line(exc)})")]) from exc
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError([Problem(name, None, None, f"the datasets folder cannot be read ({_first_line(exc)}); "
                                                   "a file cut short reads so")]) from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise DataError([Problem(name, None, None, f"the folder holds the splits {', '.join(splits)}: save "
                                                       "one split (dataset_dict['train'].save_to_disk(...))")])
        loaded = loaded[splits[0]]
    return loaded.with_format("arrow")[:]


def _check_size(name: str, rows: int, size: int, limits: TableLimits) -> None:
    if limits.max_rows is not None and rows > limits.max_rows:
        raise DataError([Problem(name, None, None, f"the file holds {rows} rows; the limit is {limits.max_rows}")])
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise DataError([Problem(name, None, None, f"the file's data is {size / 1048576:.1f} MB uncompressed; "
                                                   f"the limit is {limits.max_bytes / 1048576:.0f} MB")])


def _rows_of(name: str, table: Any, limits: TableLimits) -> list[dict[str, Any]]:
    _check_size(name, table.num_rows, table.nbytes, limits)
    table = _flat(name, table)
    if table.num_rows == 0:
        raise DataError([Problem(name, None, None, "the file holds no rows")])
    rows = table.to_pylist()
    # A float column's NaN is how pandas writes a missing value; JSON rows have null for it.
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


def _flat(name: str, table: Any) -> Any:
    """The table with dictionary (categorical) columns decoded; any column not text, number, bool or null
    is a problem naming it."""
    import pyarrow as pa
    import pyarrow.types as t

    problems: list[Problem] = []
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if t.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        if t.is_nested(kind):
            problems.append(Problem(name, None, field.name, f"a nested column ({kind}): rows need flat fields of "
                                                            "text, numbers or booleans; flatten it first"))
        elif not (t.is_string(kind) or t.is_large_string(kind) or t.is_integer(kind) or t.is_floating(kind)
                  or t.is_boolean(kind) or t.is_null(kind)):
            problems.append(Problem(name, None, field.name, f"a column of type {kind}: fields must be text, "
                                                            "numbers or booleans; convert it (to text) first"))
        if len(problems) >= MAX_PROBLEMS:
            break
        columns.append(column)
    if problems:
        raise DataError(problems)
    if len(set(table.column_names)) != len(table.column_names):
        raise DataError([Problem(name, None, None, "the table repeats a column name")])
    return pa.table(columns, names=table.column_names)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
