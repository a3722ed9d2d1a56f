"""Dataset and label-set import: every released file, and every kind of bad input writing nothing."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from icm_engine.examples import DataError, parse_label
from webapp.datasets.models import Example, LabelSet, LabelSetKind
from webapp.datasets.services import create_dataset, import_label_set

from ..conftest import ROOT
from .conftest import SMALL_ROWS, counts, jsonl

# Each slice of a released file the repository ships, with the preset it is meant for (data/paper/README.md).
PAPER_FILES = {
    "data/paper/truthfulqa/train_truthfulqa.json": "truthfulqa",
    "data/paper/truthfulqa/praxis_subset_train.json": "truthfulqa",
    "data/paper/truthfulqa/train_truthfulqa_preference.json": "alpaca",
    "data/paper/gsm8k/gsm8k_dev.json": "gsm8k",
    "data/paper/alpaca/alpaca_dev.json": "alpaca",
    "tests/data/shapes/larger_than_test.json": "claims",
    "tests/data/shapes/gsm8k_pairs_test.json": "claims",
    "tests/data/shapes/political_normative_test.json": "claims",
}


@pytest.mark.django_db
@pytest.mark.parametrize("relpath", sorted(PAPER_FILES))
def test_import_every_released_file(relpath, owner):
    path = ROOT / relpath
    rows = json.loads(path.read_text())
    ds = create_dataset(owner=owner, filename=path.name, data=path.read_bytes(), task=PAPER_FILES[relpath])
    assert Example.objects.filter(dataset=ds).count() == len(rows)
    assert ds.source_name == path.name
    first = Example.objects.get(dataset=ds, position=0)
    assert first.external_id == "0"  # the released files have no id: the row's position
    assert "label" not in first.fields  # gold stays out of the example
    gold_rows = [r for r in rows if r.get("label") is not None]
    gold = LabelSet.objects.filter(dataset=ds, kind=LabelSetKind.GOLD)
    if not gold_rows:
        assert not gold.exists()  # political_normative: no truth value, no gold
        return
    (gold_set,) = gold
    assert gold_set.labels.count() == len(gold_rows)
    assert gold_set.labels.filter(value=True).count() == sum(parse_label(r["label"]) for r in gold_rows)
    groups = {str(r["consistency_id"]) for r in rows}
    assert Example.objects.filter(dataset=ds).values("group").distinct().count() == len(groups)
    if PAPER_FILES[relpath] == "gsm8k":
        # The label-free key is the solution's own final answer.
        ex = Example.objects.filter(dataset=ds).exclude(consistency_key="").first()
        assert ex.consistency_key is not None


@pytest.mark.django_db
def test_api_upload_and_dry_run(owner_api, paper_data):
    path = paper_data / "truthfulqa" / "praxis_subset_train.json"
    before = counts()
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile(path.name, path.read_bytes()),
                                             "task": "truthfulqa", "dry_run": "true"}, format="multipart")
    assert resp.status_code == 200, resp.content
    preview = resp.json()
    assert preview["rows"] == 256 and preview["groups"] == 64
    assert preview["label_balance"]["true"] + preview["label_balance"]["false"] == 256
    assert set(preview["fields"]) >= {"question", "choice", "consistency_id"}
    assert counts() == before  # a dry run writes nothing
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile(path.name, path.read_bytes()),
                                             "task": "truthfulqa", "name": "Praxis"}, format="multipart")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["name"] == "Praxis" and body["example_count"] == 256 and body["my_role"] == "owner"


def _csv(text: str) -> bytes:
    return text.encode()


BAD_DATASETS = [
    ("invalid JSON", "d.json", b'[{"question": "q", "choice": "c", "label": 1},', None, None),
    ("invalid JSONL line", "d.jsonl", b'{"question": "q", "choice": "c"}\n{"question": \n', 2, None),
    ("invalid CSV", "d.csv", b'question,choice,label\n"q,"c",1\n', None, None),
    ("bad label", "d.jsonl", jsonl([{"question": "q", "choice": "c", "label": 1},
                                    {"question": "q", "choice": "c", "label": "yes"}]), 2, "label"),
    ("missing field", "d.jsonl", jsonl([{"question": "q", "choice": "c", "label": 1},
                                        {"question": "q", "label": 0}]), 2, "choice"),
    ("duplicate id", "d.jsonl", jsonl([{"id": "a", "question": "q", "choice": "c"},
                                       {"id": "a", "question": "q", "choice": "d"}]), 2, "id"),
    ("empty file", "d.jsonl", b"", None, None),
    ("blank file", "d.csv", b"  \n", None, None),
    ("CSV missing cells", "d.csv", _csv("question,choice,label\nq,c,1\nq2\n"), 2, None),
    ("not UTF-8", "d.csv", "question,choice\nq,caf\xe9\n".encode("latin-1"), None, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "filename", "data", "row", "field"), BAD_DATASETS, ids=[c[0] for c in BAD_DATASETS])
def test_bad_dataset_upload_writes_nothing(case, filename, data, row, field, owner_api):
    before = counts()
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile(filename, data), "task": "truthfulqa"},
                          format="multipart")
    assert resp.status_code == 400, resp.content
    assert counts() == before
    body = resp.json()
    if "problems" in body:
        first = body["problems"][0]
        assert first["file"] == filename
        assert first["row"] == row
        assert first["field"] == field
    else:  # DRF's own validation (an empty upload is refused before parsing)
        assert "file" in body


@pytest.mark.django_db
def test_many_bad_rows_name_the_first_twenty(owner_api):
    rows = [{"question": "q", "choice": "c", "label": "maybe"} for _ in range(30)]
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile("many.jsonl", jsonl(rows)),
                                             "task": "truthfulqa"}, format="multipart")
    assert resp.status_code == 400
    problems = resp.json()["problems"]
    assert len(problems) == 20
    assert [p["row"] for p in problems] == list(range(1, 21))
    assert all(p["field"] == "label" for p in problems)


@pytest.mark.django_db
def test_upload_cap(owner_api, settings):
    settings.ICM_MAX_UPLOAD_BYTES = 1000
    before = counts()
    big = jsonl([{"question": "q" * 200, "choice": "c"} for _ in range(10)])
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile("big.jsonl", big), "task": "truthfulqa"},
                          format="multipart")
    assert resp.status_code == 400
    assert "limited to" in resp.json()["detail"]
    assert counts() == before


@pytest.mark.django_db
def test_row_cap(owner, settings):
    settings.ICM_MAX_ROWS = 5
    with pytest.raises(DataError, match="limit is 5"):
        create_dataset(owner=owner, filename="d.jsonl", data=jsonl(SMALL_ROWS), task="truthfulqa")


@pytest.mark.django_db
def test_custom_template_and_consistency(owner):
    rows = [{"id": i, "text": f"t{i}", "ans": "1,000" if i < 2 else "7", "label": 1} for i in range(4)]
    ds = create_dataset(owner=owner, filename="c.jsonl", data=jsonl(rows), task="claims",
                        template="Statement: {text}\\nI think this claim is", consistency="key:ans")
    assert ds.template == "Statement: {text}\nI think this claim is"
    assert ds.consistency == "key:ans"
    keys = list(Example.objects.filter(dataset=ds).values_list("consistency_key", flat=True))
    assert keys == ["1000", "1000", "7", "7"]
    with pytest.raises(DataError) as err:
        create_dataset(owner=owner, filename="c.jsonl", data=jsonl(rows), task="claims",
                       template="Statement: {missing}")
    assert err.value.problems[0].field == "missing" and err.value.problems[0].row == 1


def _label_upload(api, dataset, filename, data, kind="human", name="h"):
    return api.post(f"/api/datasets/{dataset.pk}/labelsets/",
                    {"file": SimpleUploadedFile(filename, data), "kind": kind, "name": name}, format="multipart")


@pytest.mark.django_db
def test_label_set_import(owner_api, dataset):
    rows = [{"id": ex_id, "label": i % 3 == 0, "score": i / 10} for i, ex_id in
            enumerate(Example.objects.filter(dataset=dataset).values_list("external_id", flat=True))]
    resp = _label_upload(owner_api, dataset, "h.jsonl", jsonl(rows))
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["kind"] == "human" and body["version"] == 1 and body["n_labels"] == 8
    assert body["n_true"] == 3 and not body["partial"] and body["created_by"] == "olivia"
    # The same name again is a new version, not an overwrite.
    resp = _label_upload(owner_api, dataset, "h.csv", b"id,label\nq0-0,1\nq0-1,\n")
    assert resp.status_code == 201
    assert resp.json()["version"] == 2 and resp.json()["n_labels"] == 1 and resp.json()["partial"]
    assert LabelSet.objects.get(dataset=dataset, name="h", version=1).labels.count() == 8


BAD_LABELS = [
    ("bad label", "l.jsonl", jsonl([{"id": "q0-0", "label": 1}, {"id": "q0-1", "label": "yes"}]), 2, "label"),
    ("label 2", "l.csv", b"id,label\nq0-0,1\nq0-1,2\n", 2, "label"),
    ("missing label column", "l.csv", b"id,score\nq0-0,0.5\n", 1, "label"),
    ("missing id", "l.jsonl", jsonl([{"label": 1}]), 1, "id"),
    ("unknown id", "l.jsonl", jsonl([{"id": "q0-0", "label": 1}, {"id": "nope", "label": 0}]), 2, "id"),
    ("duplicate id", "l.csv", b"id,label\nq0-0,1\nq0-0,0\n", 2, "id"),
    ("bad score", "l.csv", b"id,label,score\nq0-0,1,high\n", 1, "score"),
    ("invalid JSONL", "l.jsonl", b'{"id": "q0-0", "label": 1}\n{"id": \n', 2, None),
    ("invalid JSON", "l.json", b'[{"id": "q0-0"', None, None),
    ("invalid CSV", "l.csv", b'id,label\n"q0-0,1\n', None, None),
    ("empty", "l.jsonl", b"\n\n", None, None),
    ("no labels at all", "l.csv", b"id,label\nq0-0,\n", None, "label"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "filename", "data", "row", "field"), BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_bad_label_set_import_writes_nothing(case, filename, data, row, field, owner_api, dataset):
    before = counts()
    resp = _label_upload(owner_api, dataset, filename, data)
    assert resp.status_code == 400, resp.content
    assert counts() == before
    first = resp.json()["problems"][0]
    assert (first["file"], first["row"], first["field"]) == (filename, row, field), first


@pytest.mark.django_db
def test_label_set_import_reports_up_to_twenty_problems(owner, dataset):
    data = "\n".join(json.dumps({"id": f"x{i}", "label": 1}) for i in range(40)).encode()
    with pytest.raises(DataError) as err:
        import_label_set(user=owner, dataset=dataset, filename="l.jsonl", data=data, kind="human")
    assert len(err.value.problems) == 20
    assert [p.row for p in err.value.problems] == list(range(1, 21))


@pytest.mark.django_db
def test_label_set_kind_is_checked(owner_api, dataset):
    resp = _label_upload(owner_api, dataset, "l.csv", b"id,label\nq0-0,1\n", kind="oracle")
    assert resp.status_code == 400
    assert "kind" in resp.json()


@pytest.mark.django_db
def test_page_upload_preview_then_confirm(client, owner):
    client.force_login(owner)
    data = jsonl(SMALL_ROWS)
    before = counts()
    resp = client.post("/datasets/new/", {"file": io.BytesIO(data), "task": "truthfulqa", "name": "Paged"},
                       HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Import 8 examples" in html and "4 true, 4 false" in html
    assert "Answer &lt;b&gt;0&lt;/b&gt;" in html  # dataset text is escaped
    assert counts()[:4] == before[:4]  # the preview wrote no dataset
    token = resp.context["token"]
    resp = client.post("/datasets/new/confirm/", {"token": token})
    assert resp.status_code == 302
    assert Example.objects.filter(dataset__name="Paged").count() == 8
    # The staged upload is spent: confirming twice imports nothing more.
    assert client.post("/datasets/new/confirm/", {"token": token}).status_code == 404


@pytest.mark.django_db
def test_page_upload_errors_are_listed(client, owner):
    client.force_login(owner)
    bad = jsonl([{"question": "q", "choice": "c", "label": "perhaps"}])
    resp = client.post("/datasets/new/", {"file": io.BytesIO(bad), "task": "truthfulqa"})
    assert resp.status_code == 400
    html = resp.content.decode()
    assert "nothing was written" in html and "perhaps" in html


@pytest.mark.django_db
def test_label_import_page_refuses_viewer(client, viewer, dataset):
    client.force_login(viewer)
    before = counts()
    upload = SimpleUploadedFile("l.csv", b"id,label\nq0-0,1\n")
    resp = client.post(f"/datasets/{dataset.pk}/labelsets/import/", {"file": upload, "kind": "human"})
    assert resp.status_code == 403
    assert counts() == before



@pytest.mark.django_db
def test_oversized_request_is_refused_before_reading(owner_api, settings):
    settings.ICM_MAX_UPLOAD_BYTES = 10
    before = counts()
    big = b"x" * (2 * 1024 * 1024)
    resp = owner_api.post("/api/datasets/", {"file": SimpleUploadedFile("big.csv", big), "task": "truthfulqa"},
                          format="multipart")
    assert resp.status_code == 413
    assert "limited to" in resp.json()["detail"]
    assert counts() == before
