from __future__ import annotations

import json

import pytest

from icm_engine.examples import DataError, load_labels, parse_label
from icm_engine.presets import get_task, load_dataset

from .conftest import PAPER_DATA, ROOT, SHAPES

# Every slice of the paper's released files the repository ships, with the preset that reads it and its rows.
FILES = {
    "data/paper/truthfulqa/train_truthfulqa.json": ("truthfulqa", 256),
    "data/paper/truthfulqa/praxis_subset_train.json": ("truthfulqa", 256),
    "data/paper/truthfulqa/train_truthfulqa_preference.json": ("alpaca", 64),
    "data/paper/gsm8k/gsm8k_dev.json": ("gsm8k", 100),
    "data/paper/alpaca/alpaca_dev.json": ("alpaca", 80),
    "tests/data/shapes/larger_than_test.json": ("truthfulqa", 8),
    "tests/data/shapes/gsm8k_pairs_test.json": ("truthfulqa", 6),
    "tests/data/shapes/political_normative_test.json": ("truthfulqa", 6),
}


def test_every_shipped_file_is_listed():
    shipped = [*PAPER_DATA.rglob("*.json"), *SHAPES.glob("*.json")]
    assert {str(p.relative_to(ROOT)) for p in shipped} == set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_loads_every_released_file(name):
    preset, rows = FILES[name]
    data = load_dataset(ROOT / name, get_task(preset))
    assert len(data.examples) == rows
    raw = json.loads((ROOT / name).read_text())
    # Gold labels are kept apart: never among the fields the search can see.
    assert all("label" not in ex.fields for ex in data.examples)
    expected = [parse_label(r["label"]) for r in raw if "label" in r]
    assert [data.gold[ex.id] for ex in data.examples if ex.id in data.gold] == expected
    if "consistency_id" in raw[0]:
        assert data.examples[0].group == str(raw[0]["consistency_id"])


def test_label_forms():
    for v in (1, "1", True, "True", "true"):
        assert parse_label(v) is True
    for v in (0, "0", False, "False", "false"):
        assert parse_label(v) is False
    for v in (2, "yes", 1.0, None, [], "TRUE "):
        with pytest.raises(ValueError):
            parse_label(v)


def test_jsonl_and_csv_same_fields(tmp_path):
    rows = [{"question": "q1", "choice": "c1", "label": "1", "consistency_id": "a"},
            {"question": "q2", "choice": "c2", "label": "False", "consistency_id": "a"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "d.csv").write_text("question,choice,label,consistency_id\nq1,c1,1,a\nq2,c2,False,a\n")
    task = get_task("truthfulqa")
    for name in ("d.jsonl", "d.csv"):
        data = load_dataset(tmp_path / name, task)
        assert [ex.id for ex in data.examples] == [0, 1]  # no id field: the row's position
        assert data.gold == {0: True, 1: False}
        assert {ex.group for ex in data.examples} == {"a"}


def test_missing_consistency_id_means_own_group(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "x", "question": "q", "choice": "c"}\n'
                                      '{"id": "y", "question": "q", "choice": "d"}\n')
    data = load_dataset(tmp_path / "d.jsonl", get_task("truthfulqa"))
    assert data.examples[0].group != data.examples[1].group
    assert data.gold == {}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad_label.json", '[{"question": "q", "choice": "c", "label": 1},\n'
                           ' {"question": "q", "choice": "c", "label": "maybe"}]',
         "bad_label.json: row 2, field 'label'"),
        ("missing.jsonl", '{"question": "q", "choice": "c"}\n{"question": "q"}\n',
         "missing.jsonl: row 2, field 'choice'"),
        ("broken.json", '[{"question": "q", "choice": "c"},\n {"question": ]', "broken.json: invalid JSON at line 2"),
        ("broken.jsonl", '{"question": "q", "choice": "c"}\n{oops}\n', "broken.jsonl: row 2"),
        ("ragged.csv", "question,choice\nq,c\nq,c,extra\n", "ragged.csv: row 2"),
        ("dup.jsonl", '{"id": 5, "question": "q", "choice": "c"}\n{"id": 5, "question": "q", "choice": "d"}\n',
         "dup.jsonl: row 2, field 'id'"),
        ("empty.json", "", "empty.json: the file is empty"),
        ("obj.json", '{"question": "q"}', "obj.json: expected a JSON array"),
        ("types.jsonl", '{"question": ["q"], "choice": "c"}\n', "types.jsonl: row 1, field 'question'"),
        # Python's JSON reader takes these; no database stores them (found by the import fuzzing).
        ("nan.jsonl", '{"question": "q", "choice": "c"}\n{"question": "q", "choice": NaN}\n',
         "nan.jsonl: row 2: invalid JSON: NaN is not a JSON number"),
        ("inf.json", '[{"question": "q", "choice": 1e400}]', "inf.json: invalid JSON: 1e400 is too large"),
        ("nul.jsonl", '{"question": "q", "choice": "c\\u0000"}\n', "nul.jsonl: row 1, field 'choice': contains a NUL"),
    ],
)
def test_bad_input_names_row_and_field(tmp_path, name, content, expected):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / name, get_task("truthfulqa"))
    assert str(err.value).startswith(expected)


def test_reports_many_problems(tmp_path):
    rows = [{"question": "q", "choice": "c", "label": "bad"} for _ in range(30)]
    (tmp_path / "many.json").write_text(json.dumps(rows))
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "many.json", get_task("truthfulqa"))
    assert len(err.value.problems) == 20
    assert [p.row for p in err.value.problems] == list(range(1, 21))


def test_label_file(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"id": 1, "label": true}\n{"id": 2, "label": null}\n')
    assert load_labels(tmp_path / "l.jsonl") == {1: True, 2: None}
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "label": "nope"}\n')
    with pytest.raises(DataError, match="row 1, field 'label'"):
        load_labels(tmp_path / "bad.jsonl")
