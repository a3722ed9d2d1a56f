"""Parquet files and Hugging Face `datasets` folders in: the rows JSON would give, and bad tables refused by name."""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icm_engine.examples import DataError, read_rows
from icm_engine.facade import TableLimits, get_task, load_dataset

from .conftest import ROOT

CLAIMS = ROOT / "data" / "sanity" / "claims_dev.jsonl"


def _rows(n: int = 6) -> list[dict]:
    return [json.loads(line) for line in CLAIMS.read_text().splitlines()[:n]]


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _zip(folder: Path, inside: str = "claims") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{inside}/{path.relative_to(folder)}")
    return buffer.getvalue()


def _save(dataset, tmp_path: Path) -> Path:
    folder = tmp_path / "claims"
    dataset.save_to_disk(str(folder))
    return folder


def test_a_parquet_file_gives_the_rows_of_its_jsonl_and_loads_as_the_same_examples():
    rows = _rows()
    data = _parquet(pa.Table.from_pylist(rows))
    assert read_rows("claims.parquet", data) == rows
    task = get_task("claims", consistency="key:answer")
    from_parquet = load_dataset("claims.parquet", task, data=data)
    from_jsonl = load_dataset("claims.jsonl", task, data="".join(json.dumps(r) + "\n" for r in rows).encode())
    assert from_parquet.examples == from_jsonl.examples and from_parquet.gold == from_jsonl.gold


def test_a_pandas_frame_with_missing_values_and_a_category_reads_as_json_would():
    frame = pd.DataFrame(_rows())
    frame["category"] = frame["category"].astype("category")
    frame.loc[1, "answer"] = None
    frame["weight"] = [1.5, float("nan"), 2.0, 3.0, 4.0, 5.0]
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    rows = read_rows("frame.parquet", buffer.getvalue())
    assert rows[0]["category"] == _rows()[0]["category"]  # categorical decoded to its text
    assert rows[1]["answer"] is None and rows[1]["weight"] is None  # pandas' NaN is JSON's null
    assert rows[2]["weight"] == 2.0


def test_the_suffix_may_be_anything_when_the_content_is_parquet():
    rows = _rows(2)
    assert read_rows("upload.bin", _parquet(pa.Table.from_pylist(rows))) == rows


def test_a_datasets_folder_its_zip_and_a_one_split_dict_read_the_same(tmp_path):
    rows = _rows()
    folder = _save(datasets.Dataset.from_list(rows), tmp_path)
    assert read_rows(folder) == rows  # the CLI's path to a folder
    assert read_rows("claims.zip", _zip(folder)) == rows
    dict_folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(dict_folder))
    assert read_rows("dict.zip", _zip(dict_folder, inside="dict")) == rows


def test_a_class_label_column_reads_as_its_numbers(tmp_path):
    features = datasets.Features({"question": datasets.Value("string"), "choice": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["False", "True"])})
    data = datasets.Dataset.from_dict({"question": ["q", "q"], "choice": ["a", "b"], "label": [1, 0]},
                                      features=features)
    loaded = load_dataset("d.zip", get_task("truthfulqa"), data=_zip(_save(data, tmp_path)))
    assert loaded.gold_list() == [True, False]


def test_a_dict_of_several_splits_asks_for_one(tmp_path):
    rows = _rows(2)
    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows)}).save_to_disk(str(folder))
    with pytest.raises(DataError, match="splits train, test"):
        read_rows("dict.zip", _zip(folder, inside="dict"))


NESTED = [
    ("a list column", pa.array([[1, 2], [3]]), "nested column"),
    ("a struct column", pa.array([{"a": 1}, {"a": 2}]), "nested column"),
    ("a timestamp column", pa.array([0, 1], type=pa.timestamp("s")), "type timestamp"),
    ("a binary column", pa.array([b"x", b"y"]), "type binary"),
]


@pytest.mark.parametrize(("case", "column", "message"), NESTED, ids=[c[0] for c in NESTED])
def test_a_column_a_prompt_cannot_read_as_text_is_refused_by_name(case, column, message):
    table = pa.table({"question": ["q", "q"], "choice": ["a", "b"], "extra": column})
    with pytest.raises(DataError, match=message) as caught:
        read_rows("bad.parquet", _parquet(table))
    (problem,) = caught.value.problems
    assert problem.field == "extra" and problem.source == "bad.parquet"


def test_a_truncated_or_foreign_file_is_refused_as_unreadable():
    data = _parquet(pa.Table.from_pylist(_rows()))
    for bad in (data[: len(data) // 2], b"PAR1" + b"\0" * 40, data[:-4]):
        with pytest.raises(DataError, match="not a readable Parquet file"):
            read_rows("cut.parquet", bad)
    with pytest.raises(DataError, match="not a readable zip file"):
        read_rows("cut.zip", b"PK\x03\x04" + b"\0" * 20)


def test_a_truncated_zip_member_is_refused(tmp_path):
    zipped = _zip(_save(datasets.Dataset.from_list(_rows()), tmp_path))
    with pytest.raises(DataError):
        read_rows("cut.zip", zipped[: len(zipped) - 200])


def _zip_of(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../outside.json", "/etc/cron.d/x", "claims/../../up.arrow", "C:/windows.txt"])
def test_a_zip_with_a_path_outside_its_folder_is_refused_before_anything_is_unpacked(member, tmp_path):
    before = set(tmp_path.parent.iterdir())
    with pytest.raises(DataError, match="outside the zip's folder") as caught:
        read_rows("evil.zip", _zip_of({"claims/state.json": b"{}", member: b"x"}))
    assert caught.value.problems[0].field == member
    assert set(tmp_path.parent.iterdir()) == before


def test_a_zip_with_a_link_is_refused():
    with pytest.raises(DataError, match="a link"):
        read_rows("links.zip", _zip_of({"claims/state.json": b"{}"}, links=("claims/data.arrow",)))


def test_a_zip_without_a_datasets_folder_says_what_to_zip():
    with pytest.raises(DataError, match="save_to_disk"):
        read_rows("other.zip", _zip_of({"notes.txt": b"hello"}))


def test_limits_bound_what_a_small_file_expands_to(tmp_path):
    # Text that compresses a thousandfold: the limit is on what the file holds, not on its bytes.
    rows = [{"question": "q" * 100_000, "choice": "c"} for _ in range(20)]
    data = _parquet(pa.Table.from_pylist(rows))
    assert len(data) < 100_000
    with pytest.raises(DataError, match="MB uncompressed"):
        read_rows("big.parquet", data, limits=TableLimits(max_bytes=1_000_000))
    with pytest.raises(DataError, match="holds 20 rows; the limit is 5"):
        read_rows("big.parquet", data, limits=TableLimits(max_rows=5))
    zipped = _zip_of({"claims/state.json": b"{}", "claims/pad.bin": b"\0" * 2_000_000})
    with pytest.raises(DataError, match="expands to"):
        read_rows("bomb.zip", zipped, limits=TableLimits(max_bytes=1_000_000))
    assert read_rows("big.parquet", data, limits=TableLimits(max_bytes=10_000_000, max_rows=20)) == rows


def test_an_empty_table_holds_no_rows():
    table = pa.table({"question": pa.array([], pa.string()), "choice": pa.array([], pa.string())})
    with pytest.raises(DataError, match="holds no rows"):
        read_rows("empty.parquet", _parquet(table))


def test_the_cli_reads_a_parquet_file_and_a_datasets_folder_and_names_a_bad_row(tmp_path, capsys):
    from icm_engine.cli import main

    rows = _rows(4)
    parquet = tmp_path / "claims.parquet"
    parquet.write_bytes(_parquet(pa.Table.from_pylist(rows)))
    folder = _save(datasets.Dataset.from_list(rows), tmp_path)
    for source in (parquet, folder):
        assert load_dataset(source, get_task("claims")).examples == load_dataset(CLAIMS, get_task("claims"),
                                                                                  limit=4).examples
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(_parquet(pa.Table.from_pylist([{"question": "q"}])))
    assert main(["label", str(bad), "--task", "truthfulqa", "--out", str(tmp_path / "o.jsonl")]) != 0
    assert "bad.parquet: row 1, field 'choice': required field is missing" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_datasets_folder_that_names_a_file_elsewhere_is_refused_without_reading_it(tmp_path):
    # A state.json may name any path; datasets would join it to the folder and read another dataset's rows.
    secret = _save(datasets.Dataset.from_list([{"question": "SECRET", "choice": "sk-123"}]), tmp_path / "secret")
    (arrow,) = secret.glob("*.arrow")
    mine = _save(datasets.Dataset.from_list(_rows(2)), tmp_path / "mine")
    for named in (str(arrow), f"../../secret/claims/{arrow.name}"):
        state = json.loads((mine / "state.json").read_text())
        state["_data_files"] = [{"filename": named}]
        (mine / "state.json").write_text(json.dumps(state))
        with pytest.raises(DataError, match="_data_files must name Arrow files of this folder") as caught:
            read_rows("evil.zip", _zip(mine))
        assert "SECRET" not in str(caught.value)
        with pytest.raises(DataError, match="_data_files"):
            read_rows(mine)


def test_a_dataset_dict_whose_split_leaves_the_folder_is_refused(tmp_path):
    folder = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows(2))}).save_to_disk(str(folder))
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["../../elsewhere"]}))
    with pytest.raises(DataError, match="splits must be a list of plain names"):
        read_rows("dict.zip", _zip(folder, inside="dict"))


@pytest.mark.parametrize("state", [{"_data_files": []}, {"_data_files": "x"}, [], {"_split": {}}])
def test_a_malformed_state_json_is_a_named_problem(state, tmp_path):
    folder = _save(datasets.Dataset.from_list(_rows(2)), tmp_path)
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError) as caught:
        read_rows("odd.zip", _zip(folder))
    assert "/tmp/" not in str(caught.value)


def test_compressed_arrow_buffers_are_refused_before_they_expand(tmp_path):
    folder = _save(datasets.Dataset.from_list(_rows(2)), tmp_path)
    (arrow,) = folder.glob("*.arrow")
    big = pa.table({"question": ["q" * 1_000_000] * 50, "choice": ["c"] * 50})
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(
            sink, big.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(big)
    assert arrow.stat().st_size < 100_000  # 50 MB of text in a few kilobytes
    with pytest.raises(DataError, match="compressed Arrow buffers"):
        read_rows("bomb.zip", _zip(folder), limits=TableLimits(max_bytes=10_000_000))


def test_a_dictionary_that_decodes_past_the_limit_is_refused_before_it_is_decoded():
    # One megabyte of text stored once and used on 200 rows: a 50 KB file that decodes to 200 MB.
    table = pa.table({"question": pa.array(["q" * 1_000_000] * 200).dictionary_encode(), "choice": ["c"] * 200})
    data = _parquet(table)
    assert len(data) < 200_000
    with pytest.raises(DataError, match="MB uncompressed"):
        read_rows("dict.parquet", data, limits=TableLimits(max_bytes=50_000_000))


def test_prefix_encoded_text_is_refused():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"question": ["q1", "q2"], "choice": ["a", "b"]}), buffer, use_dictionary=False,
                   column_encoding={"question": "DELTA_BYTE_ARRAY"})
    with pytest.raises(DataError, match="DELTA_BYTE_ARRAY") as caught:
        read_rows("delta.parquet", buffer.getvalue())
    assert caught.value.problems[0].field == "question"


def test_infinity_is_refused_by_row_and_field_and_invalid_utf8_by_column():
    with pytest.raises(DataError, match="inf is not a finite number") as caught:
        read_rows("inf.parquet", _parquet(pa.table({"question": ["q", "q"], "weight": [1.0, float("inf")]})))
    assert (caught.value.problems[0].row, caught.value.problems[0].field) == (2, "weight")
    bad_text = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(struct.pack("<ii", 0, 2)),
                                                      pa.py_buffer(b"\xff\xfe")])
    with pytest.raises(DataError, match="not UTF-8") as caught:
        read_rows("utf8.parquet", _parquet(pa.table({"question": bad_text})))
    assert caught.value.problems[0].field == "question"


def test_an_encrypted_zip_member_is_refused():
    data = bytearray(_zip_of({"claims/state.json": b"{}"}))
    # zipfile writes no encrypted members: set the flag in the local and the central header, as a tool would.
    data[6] |= 0x1
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1
    with pytest.raises(DataError, match="encrypted"):
        read_rows("locked.zip", bytes(data))


def test_a_class_label_column_is_read_by_its_names_not_its_numbers(tmp_path):
    # Names in the other order: 0 means True here. Read as numbers, gold would flip.
    features = datasets.Features({"question": datasets.Value("string"), "choice": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["True", "False"])})
    data = datasets.Dataset.from_dict({"question": ["q", "q"], "choice": ["a", "b"], "label": [0, 1]},
                                      features=features)
    loaded = load_dataset("d.zip", get_task("truthfulqa"), data=_zip(_save(data, tmp_path)))
    assert loaded.gold_list() == [True, False]
