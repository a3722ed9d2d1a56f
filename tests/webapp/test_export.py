"""Exports carry provenance, neutralise spreadsheet formulas, and re-import to the same labels."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.datasets.models import LabelSet
from webapp.datasets.selectors import agreement
from webapp.datasets.services import create_dataset, import_label_set

from .conftest import jsonl


def _body(resp) -> str:
    return b"".join(resp.streaming_content).decode()


def _labels(label_set: LabelSet) -> dict[str, tuple[bool, float | None]]:
    return {lab.example.external_id: (lab.value, lab.score) for lab in label_set.labels.select_related("example")}


TRICKY = [
    {"id": "=1+1", "question": "q?", "choice": "=HYPERLINK(\"http://x\")", "label": 1, "consistency_id": "g1"},
    {"id": "-5", "question": "q?", "choice": "@SUM(A1)", "label": 0, "consistency_id": "g1"},
    {"id": "plain", "question": "q, with \"quotes\"\nand a newline", "choice": "+cmd|' /C calc'!A0", "label": "True",
     "consistency_id": "g2"},
    {"id": "ünï", "question": "<script>alert(1)</script>", "choice": "c", "label": "0", "consistency_id": "g2"},
]


@pytest.fixture
def tricky(owner):
    ds = create_dataset(owner=owner, filename="tricky.jsonl", data=jsonl(TRICKY), task="truthfulqa")
    import_label_set(user=owner, dataset=ds, filename="m.jsonl", kind="icm", name="model", model="gemma3-270m",
                     data=jsonl([{"id": "=1+1", "label": 0, "score": -1.25}, {"id": "-5", "label": 1, "score": 2.0},
                                 {"id": "plain", "label": 1, "score": None}]))
    return ds


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_label_set_export_reimports_identically(fmt, tricky, owner_api):
    for label_set in LabelSet.objects.filter(dataset=tricky):
        resp = owner_api.get(f"/api/labelsets/{label_set.pk}/export/?format={fmt}")
        assert resp.status_code == 200
        assert resp["Content-Type"].startswith("application/x-ndjson" if fmt == "jsonl" else "text/csv")
        assert "attachment" in resp["Content-Disposition"]
        text = _body(resp)
        resp = owner_api.post(f"/api/datasets/{tricky.pk}/labelsets/",
                              {"file": SimpleUploadedFile(f"back.{fmt}", text.encode()), "kind": label_set.kind,
                               "name": f"back-{label_set.name}-{fmt}"}, format="multipart")
        assert resp.status_code == 201, resp.content
        again = LabelSet.objects.get(pk=resp.json()["id"])
        assert _labels(again) == _labels(label_set)
        assert again.partial == label_set.partial


def test_label_set_export_has_provenance(tricky, owner_api):
    model_set = LabelSet.objects.get(dataset=tricky, name="model")
    rows = [json.loads(line) for line in _body(owner_api.get(f"/api/labelsets/{model_set.pk}/export/")).splitlines()]
    assert [r["id"] for r in rows] == ["=1+1", "-5", "plain"]
    assert rows[0] == {"id": "=1+1", "label": False, "score": -1.25, "kind": "icm", "label_set": "model",
                       "version": 1, "source": "import", "run": None, "model": "gemma3-270m", "configuration": {}}


def test_csv_export_neutralises_formulas(tricky, owner_api):
    text = _body(owner_api.get(f"/api/datasets/{tricky.pk}/export/?format=csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == ["'=1+1", "-5", "plain", "ünï"]  # a plain negative number stays
    assert rows[0]["choice"].startswith("'=HYPERLINK")
    assert rows[1]["choice"] == "'@SUM(A1)"
    assert rows[2]["choice"] == "'+cmd|' /C calc'!A0"
    assert rows[2]["question"] == "q, with \"quotes\"\nand a newline"
    # Label sets side by side: gold and the model's labels, empty where a set has no label.
    assert rows[0]["label:gold@v1"] == "True" and rows[0]["label:model@v1"] == "False"
    assert rows[3]["label:model@v1"] == ""


def test_dataset_export_jsonl(tricky, owner_api):
    rows = [json.loads(line) for line in _body(owner_api.get(f"/api/datasets/{tricky.pk}/export/")).splitlines()]
    assert len(rows) == 4
    assert rows[3]["question"] == "<script>alert(1)</script>"
    assert rows[1]["label:gold@v1"] is False and rows[1]["label:model@v1"] is True
    assert rows[0]["consistency_id"] == "g1"


def test_bad_export_format(tricky, owner_api):
    ls = LabelSet.objects.filter(dataset=tricky).first()
    assert owner_api.get(f"/api/labelsets/{ls.pk}/export/?format=xlsx").status_code == 400
    assert owner_api.get(f"/api/datasets/{tricky.pk}/export/?format=xml").status_code == 400


def test_integer_ids_stay_integers(owner, owner_api):
    rows = [{"id": i * 10, "question": "q", "choice": f"c{i}", "label": i % 2} for i in range(3)]
    ds = create_dataset(owner=owner, filename="ints.json", data=json.dumps(rows).encode(), task="truthfulqa")
    gold = LabelSet.objects.get(dataset=ds)
    out = [json.loads(x) for x in _body(owner_api.get(f"/api/labelsets/{gold.pk}/export/")).splitlines()]
    assert [r["id"] for r in out] == [0, 10, 20]


def test_agreement_is_counted_by_the_database(tricky, owner_api):
    gold = LabelSet.objects.get(dataset=tricky, kind="gold")
    model = LabelSet.objects.get(dataset=tricky, name="model")
    # gold: T F T F ; model: F T T - -> both label 3 examples, agree on 1.
    assert agreement(model, gold) == {"n": 3, "agree": 1, "rate": pytest.approx(1 / 3)}
    resp = owner_api.get(f"/api/labelsets/{model.pk}/agreement/?other={gold.pk}")
    assert resp.json() == {"label_set": model.pk, "other": gold.pk, "n": 3, "agree": 1, "rate": pytest.approx(1 / 3)}
