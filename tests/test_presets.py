from __future__ import annotations

import json

import pytest

from icm_engine.consistency import Conflict, ConsistencyRule
from icm_engine.examples import LoadedData, limit_examples
from icm_engine.presets import get_task, load_dataset, normalise_answer


def test_gsm8k_key_is_the_final_answer(paper_data):
    data = load_dataset(paper_data / "gsm8k/gsm8k_dev.json", get_task("gsm8k"), limit=40)
    raw = json.loads((paper_data / "gsm8k/gsm8k_dev.json").read_text())
    by_id = {i: r for i, r in enumerate(raw)}
    for ex in data.examples:
        assert ex.key == normalise_answer(by_id[ex.id]["answer"])
    assert normalise_answer("1,000") == normalise_answer("1000.0") == "1000"


def test_alpaca_keys_pair_the_two_orders_without_gold(paper_data):
    data = load_dataset(paper_data / "alpaca/alpaca_dev.json", get_task("alpaca"))
    groups: dict[str, list] = {}
    for ex in data.examples:
        groups.setdefault(ex.group, []).append(ex)
    for members in groups.values():
        assert len(members) == 2
        assert {m.key for m in members} == {"A>B", "B>A"}
    rule = ConsistencyRule(data.examples, "asymmetric")
    a, b = groups["0"]
    assert rule.pair_kind(a.uid, b.uid, True, True) == "contradiction"
    assert rule.pair_kind(a.uid, b.uid, False, False) == "contradiction"
    assert rule.pair_kind(a.uid, b.uid, True, False) is None


def test_keys_do_not_depend_on_gold(paper_data, tmp_path):
    raw = json.loads((paper_data / "alpaca/alpaca_dev.json").read_text())[:40]
    flipped = [dict(r, label=not bool(int(r["label"]) if str(r["label"]).isdigit() else r["label"] == "True"))
               for r in raw]
    (tmp_path / "a.json").write_text(json.dumps(raw))
    (tmp_path / "b.json").write_text(json.dumps(flipped))
    task = get_task("alpaca")
    a = load_dataset(tmp_path / "a.json", task)
    b = load_dataset(tmp_path / "b.json", task)
    assert [e.key for e in a.examples] == [e.key for e in b.examples]
    assert a.gold != b.gold


def test_truthfulqa_has_no_gold_derived_rule(paper_data):
    data = load_dataset(paper_data / "truthfulqa/praxis_subset_train.json", get_task("truthfulqa"))
    assert all(ex.key is None for ex in data.examples)
    assert not ConsistencyRule(data.examples, "none").conflicts([True] * len(data.examples))


def test_claims_template_and_consistency(tmp_path):
    (tmp_path / "c.jsonl").write_text(
        '{"statement": "A", "topic": "t", "answer": "x", "consistency_id": 1}\n'
        '{"statement": "B", "topic": "t", "answer": "y", "consistency_id": 1}\n'
        '{"statement": "C", "topic": "t", "answer": "x", "consistency_id": 1}\n')
    task = get_task("claims", template="About {topic}: {statement}\\nTrue or false?", consistency="key:answer")
    data = load_dataset(tmp_path / "c.jsonl", task)
    assert task.render(data.examples[0]) == "About t: A\nTrue or false?"
    rule = ConsistencyRule(data.examples, task.consistency)
    conflicts = rule.conflicts([True, True, False])
    assert Conflict(0, 1, "contradiction") in conflicts and Conflict(0, 2, "implication") in conflicts
    # Every consistent option of a contradiction, including (0, 0), which the official code skips.
    assert rule.options(Conflict(0, 1, "contradiction")) == [(True, False), (False, True), (False, False)]
    assert rule.options(Conflict(0, 1, "contradiction"), official=True) == [(True, False), (False, True)]
    with pytest.raises(Exception, match="field 'missing'"):
        (tmp_path / "d.jsonl").write_text('{"statement": "A"}\n')
        load_dataset(tmp_path / "d.jsonl", get_task("claims", template="{statement} {missing}"))


def test_unknown_preset_and_consistency():
    with pytest.raises(ValueError, match="unknown task preset"):
        get_task("nope")
    with pytest.raises(ValueError, match="unknown consistency"):
        get_task("claims", consistency="sometimes")


def test_limit_keeps_whole_groups(paper_data):
    data = load_dataset(paper_data / "gsm8k/gsm8k_dev.json", get_task("gsm8k"))
    cut = limit_examples(LoadedData(data.examples, data.gold), 10)
    sizes: dict[str, int] = {}
    for ex in cut.examples:
        sizes[ex.group] = sizes.get(ex.group, 0) + 1
    full: dict[str, int] = {}
    for ex in data.examples:
        full[ex.group] = full.get(ex.group, 0) + 1
    assert all(sizes[g] == full[g] for g in sizes)
    assert len(cut.examples) <= 10 and [e.uid for e in cut.examples] == list(range(len(cut.examples)))
