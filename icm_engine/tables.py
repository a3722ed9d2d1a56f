"""Parquet files and Hugging Face `datasets` folders as rows, read by pyarrow and `datasets` themselves.

A table's columns must be flat: text, numbers, booleans or nulls, as a JSON row's fields are. Nested,
binary and temporal columns are refused naming the column, since a prompt reads a field as text and a
silent conversion would change what the model sees. A `datasets` folder arrives as a folder (the CLI) or
as a zip of one (uploads).

An upload is untrusted, and both formats compress, so what a file expands to is bounded before it is
expanded: the Parquet footer's sizes and a dictionary's decoded length are checked before values are
decoded; a zip's members must be plain files inside its folder, within the limits, and a `datasets` folder
may name only its own Arrow files, uncompressed (as `save_to_disk` writes them), whose sizes are then what
they hold.
"""

from __future__ import annotations

import json
import math
import re
import stat
import struct
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
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]{0,200}$")
_ROWS_PER_BATCH = 4096


@dataclass(frozen=True, kw_only=True)
class TableLimits:
    """What a table may expand to once read: its data's bytes (decoded) and its rows."""

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
    return _rows_of(path.name, _load_from_disk(path.name, path, limits), limits)


# -- Parquet ----------------------------------------------------------------------------------------------------------

def _read_parquet(name: str, data: bytes, limits: TableLimits) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def unreadable(exc: BaseException) -> DataError:
        return DataError([Problem(name, None, None, f"not a readable Parquet file ({_first_line(exc)}); a file "
                                                    "cut short or of another format reads so")])

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        metadata = parquet.metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(exc) from exc
    # The footer gives each column chunk's size before decompression's expansion: checked before a value is read.
    _check_size(name, metadata.num_rows, _parquet_bytes(metadata), limits)
    _refuse_prefix_encoding(name, metadata)
    # Text is read as dictionaries (what most writers store), so a value repeated on every row is held once
    # until _rows_of has checked what the rows decode to.
    text_columns = [f.name for f in parquet.schema_arrow
                    if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    try:
        table = pq.read_table(pa.BufferReader(data), read_dictionary=text_columns)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(exc) from exc
    return _rows_of(name, table, limits)


def _parquet_bytes(metadata: Any) -> int:
    return sum(metadata.row_group(i).column(j).total_uncompressed_size
               for i in range(metadata.num_row_groups) for j in range(metadata.num_columns))


def _refuse_prefix_encoding(name: str, metadata: Any) -> None:
    """DELTA_BYTE_ARRAY stores each value as a prefix shared with the one before: a few bytes can decode to
    gigabytes, and no size in the footer says how many. Writers use it only when asked to."""
    for i in range(metadata.num_row_groups):
        for j in range(metadata.num_columns):
            column = metadata.row_group(i).column(j)
            if "DELTA_BYTE_ARRAY" in column.encodings:
                raise DataError([Problem(name, None, column.path_in_schema, "a column stored with DELTA_BYTE_ARRAY "
                                         "(prefix-shared text): write the file with the default encoding")])


# -- a zipped `datasets` folder ---------------------------------------------------------------------------------

def _read_zipped_dataset(name: str, data: bytes, limits: TableLimits) -> list[dict[str, Any]]:
    import io

    # Counted before the zip's directory is parsed: a million empty entries cost memory to list.
    if data.count(b"PK\x01\x02") > _MAX_ZIP_MEMBERS:
        raise DataError([Problem(name, None, None, f"the zip holds more than {_MAX_ZIP_MEMBERS} entries")])
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError([Problem(name, None, None, f"not a readable zip file ({_first_line(exc)})")]) from exc
    with archive, tempfile.TemporaryDirectory(prefix="icm-upload-") as tmp:
        root = Path(tmp)
        _extract_safely(name, archive, root, limits)
        folder = _dataset_folder(name, root)
        return _rows_of(name, _load_from_disk(name, folder, limits), limits)


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
        where = member.filename[:200]
        if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
            problems.append(Problem(name, None, where, "a path outside the zip's folder"))
        elif stat.S_ISLNK(mode):
            problems.append(Problem(name, None, where, "a link: a datasets folder holds files"))
        elif member.flag_bits & 0x1:
            problems.append(Problem(name, None, where, "an encrypted member: zip the folder without a password"))
        elif member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                          zipfile.ZIP_LZMA):
            problems.append(Problem(name, None, where, f"compression method {member.compress_type} is not "
                                                       "taken: zip with deflate"))
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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise DataError([Problem(name, None, None, f"the zip cannot be unpacked ({_first_line(exc, root)}); a "
                                                   "file cut short reads so")]) from exc


def _dataset_folder(name: str, root: Path) -> Path:
    """The folder `save_to_disk` wrote: the zip's root or the one folder in it that holds its markers."""
    found = sorted({p.parent for marker in _DATASET_MARKERS for p in root.rglob(marker)}, key=lambda p: len(p.parts))
    # A DatasetDict's split folders hold state.json too; the outermost folder is the one that was saved.
    if not found:
        raise DataError([Problem(name, None, None, "no datasets folder in the zip: zip the folder that "
                                                   "`Dataset.save_to_disk` wrote (its state.json and .arrow files)")])
    return found[0]


def _load_from_disk(name: str, folder: Path, limits: TableLimits) -> Any:
    import datasets
    import pyarrow as pa

    split = _check_folder(name, folder, limits)
    try:
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            loaded = loaded[split]
        table = loaded.with_format("arrow")[:]
        label_names = {key: feature.names for key, feature in loaded.features.items()
                       if isinstance(feature, datasets.ClassLabel)}
    except DataError:
        raise
    except Exception as exc:  # datasets raises what its parts raise; any of them means unreadable
        raise DataError([Problem(name, None, None, f"the datasets folder cannot be read "
                                                   f"({_first_line(exc, folder)})")]) from exc
    # A ClassLabel column holds numbers; its names are what they mean ("False"/"True" for a label).
    for key, names in label_names.items():
        index = table.schema.get_field_index(key)
        if index >= 0 and not pa.types.is_dictionary(table.schema.field(index).type):
            codes = table.column(index).to_pylist()
            table = table.set_column(index, key, pa.array(
                [None if c is None or not 0 <= c < len(names) else names[c] for c in codes], type=pa.string()))
    return table


def _check_folder(name: str, folder: Path, limits: TableLimits) -> str:
    """The folder's own description checked before `datasets` reads it: every split and Arrow file it names
    a plain name inside it (a name such as /etc/x or ../x would read a file elsewhere on this machine), the
    Arrow files uncompressed and within the limits. Returns the one split's name ('' for a Dataset)."""
    split = ""
    marker = folder / "dataset_dict.json"
    if marker.is_file():
        splits = _json_of(name, marker).get("splits")
        if not isinstance(splits, list) or not all(isinstance(s, str) and _PLAIN_NAME.match(s) for s in splits):
            raise DataError([Problem(name, None, "dataset_dict.json", "its splits must be a list of plain names")])
        if len(splits) != 1:
            raise DataError([Problem(name, None, None, f"the folder holds the splits {', '.join(splits)}: save "
                                                       "one split (dataset_dict['train'].save_to_disk(...))")])
        split = splits[0]
        folder = folder / split
    state = _json_of(name, folder / "state.json")
    files = state.get("_data_files")
    if not isinstance(files, list) or not files or not all(
            isinstance(f, dict) and isinstance(f.get("filename"), str) and _PLAIN_NAME.match(f["filename"])
            and (folder / f["filename"]).is_file() and not (folder / f["filename"]).is_symlink() for f in files):
        raise DataError([Problem(name, None, "state.json", "its _data_files must name Arrow files of this folder, "
                                                           "by plain names")])
    total = sum(_arrow_bytes(name, folder / f["filename"]) for f in files)
    if limits.max_bytes is not None and total > limits.max_bytes:
        raise DataError([Problem(name, None, None, f"the folder's data is {total / 1048576:.1f} MB; the limit is "
                                                   f"{limits.max_bytes / 1048576:.0f} MB")])
    return split


def _json_of(name: str, path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > 1_048_576:
            raise ValueError("over 1 MB")
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError([Problem(name, None, path.name, f"not readable JSON ({_first_line(exc, path.parent)})")]) \
            from exc
    if not isinstance(value, dict):
        raise DataError([Problem(name, None, path.name, "expected a JSON object")])
    return value


def _arrow_bytes(name: str, path: Path) -> int:
    """The bytes an Arrow stream's batches hold. Compressed buffers are refused before they are expanded:
    `save_to_disk` never writes them, and their compressed sizes say nothing of what they hold."""
    import pyarrow as pa

    total = 0
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.MessageReader.open_stream(source)
            for message in reader:
                if message.type not in ("schema", "record batch", "dictionary batch"):
                    continue
                if message.type != "schema" and _compressed(message.metadata.to_pybytes(),
                                                            message.type == "dictionary batch"):
                    raise DataError([Problem(name, None, path.name, "compressed Arrow buffers: save the dataset "
                                                                    "with save_to_disk as it is")])
                total += message.body.size if message.body is not None else 0
    except (pa.ArrowException, OSError, ValueError, struct.error) as exc:
        raise DataError([Problem(name, None, path.name, f"not a readable Arrow file ({_first_line(exc)}); a file "
                                                        "cut short reads so")]) from exc
    return total


def _compressed(metadata: bytes, dictionary: bool) -> bool:
    """Whether an IPC message's record batch declares body compression (its flatbuffer's `compression` field;
    pyarrow reads it only while it decompresses)."""
    def field(table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", metadata, table)[0]
        slot = 4 + 2 * index
        if slot >= struct.unpack_from("<H", metadata, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", metadata, vtable + slot)[0]
        return table + offset if offset else None

    def table_at(position: int) -> int:
        return position + struct.unpack_from("<I", metadata, position)[0]

    header = field(struct.unpack_from("<I", metadata, 0)[0], 2)  # Message.header
    if header is None:
        return False
    batch = table_at(header)
    if dictionary:  # DictionaryBatch.data is the RecordBatch
        data = field(batch, 1)
        if data is None:
            return False
        batch = table_at(data)
    return field(batch, 3) is not None  # RecordBatch.compression


# -- rows --------------------------------------------------------------------------------------------------------------

def _check_size(name: str, rows: int, size: int, limits: TableLimits) -> None:
    if limits.max_rows is not None and rows > limits.max_rows:
        raise DataError([Problem(name, None, None, f"the file holds {rows} rows; the limit is {limits.max_rows}")])
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise DataError([Problem(name, None, None, f"the file's data is {size / 1048576:.1f} MB uncompressed; "
                                                   f"the limit is {limits.max_bytes / 1048576:.0f} MB")])


def _decoded_bytes(column: Any) -> int:
    """What a column holds once decoded: a dictionary column's values counted on every row that uses them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        return column.nbytes
    total = 0
    for chunk in column.chunks:
        values = chunk.dictionary
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            lengths = pc.binary_length(values).fill_null(0)
            total += pc.sum(pc.take(lengths, chunk.indices.fill_null(0))).as_py() or 0
        total += chunk.indices.nbytes
    return total


def _rows_of(name: str, table: Any, limits: TableLimits) -> list[dict[str, Any]]:
    _check_size(name, table.num_rows, sum(_decoded_bytes(c) for c in table.columns), limits)
    table = _flat(name, table)
    if table.num_rows == 0:
        raise DataError([Problem(name, None, None, "the file holds no rows")])
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for batch in table.to_batches(max_chunksize=_ROWS_PER_BATCH):
        for row in batch.to_pylist():
            rows.append(row)
            for key, value in row.items():
                if isinstance(value, float) and not math.isfinite(value):
                    if math.isnan(value):  # how pandas writes a missing value; JSON rows have null for it
                        row[key] = None
                    elif len(problems) < MAX_PROBLEMS:
                        problems.append(Problem(name, len(rows), key, f"{value} is not a finite number"))
    if problems:
        raise DataError(problems)
    return rows


def _flat(name: str, table: Any) -> Any:
    """The table with dictionary (categorical) columns decoded and its text checked as UTF-8; any column not
    text, number, bool or null is a problem naming it."""
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
        elif t.is_string(kind) or t.is_large_string(kind):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                problems.append(Problem(name, None, field.name, "text that is not UTF-8"))
        if len(problems) >= MAX_PROBLEMS:
            break
        columns.append(column)
    if problems:
        raise DataError(problems)
    if len(set(table.column_names)) != len(table.column_names):
        raise DataError([Problem(name, None, None, "the table repeats a column name")])
    return pa.table(columns, names=table.column_names)


def _first_line(exc: BaseException, hide: Path | None = None) -> str:
    """An exception's first line for a message, without the server's temporary folder."""
    text = str(exc).strip().splitlines()
    line = (text[0] if text else type(exc).__name__)[:200]
    if hide is not None:
        line = line.replace(str(hide), "").replace(str(hide.resolve()), "")
    return re.sub(r"/tmp/icm-upload-[^/\s'\"]*", "", line)
