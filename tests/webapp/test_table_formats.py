"""Parquet and Hugging Face `datasets` through the web app: uploads with their preview and row errors, typed
exports that pyarrow and `datasets` read back, and bad tables refused with nothing stored."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.datasets.models import Dataset, Example, LabelSet, LabelSetKind
from webapp.datasets.services import create_dataset, import_label_set

from .conftest import SMALL_ROWS, counts, jsonl

pytestmark = pytest.mark.django_db


def _parquet(rows: list[dict] | pa.Table) -> bytes:
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _datasets_zip(rows: list[dict], tmp_path: Path) -> bytes:
    folder = tmp_path / "small"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"small/{path.relative_to(folder)}")
    return buffer.getvalue()


def _upload(api, filename: str, data: bytes, **extra):
    return api.post("/api/datasets/", {"file": SimpleUploadedFile(filename, data), "task": "truthfulqa", **extra},
                    format="multipart")


def test_a_parquet_upload_previews_then_stores_what_its_jsonl_would(owner_api, owner):
    before = counts()
    preview = _upload(owner_api, "small.parquet", _parquet(SMALL_ROWS), dry_run="true")
    assert preview.status_code == 200, preview.content
    assert preview.json()["rows"] == 8 and preview.json()["label_balance"] == {"true": 4, "false": 4, "unlabeled": 0}
    assert counts() == before
    created = _upload(owner_api, "small.parquet", _parquet(SMALL_ROWS), name="From Parquet")
    assert created.status_code == 201, created.content
    from_jsonl = create_dataset(owner=owner, filename="small.jsonl", data=jsonl(SMALL_ROWS), task="truthfulqa")
    mine = Dataset.objects.get(pk=created.json()["id"])

    def examples(ds):
        return list(Example.objects.filter(dataset=ds).values_list("external_id", "fields", "group", "consistency_key"))

    assert examples(mine) == examples(from_jsonl)
    gold = LabelSet.objects.get(dataset=mine, kind=LabelSetKind.GOLD)
    assert gold.labels.filter(value=True).count() == 4


def test_a_zipped_datasets_folder_uploads_from_the_page_through_its_preview(client, owner, tmp_path):
    from webapp.datasets.models import StagedUpload

    client.force_login(owner)
    resp = client.post("/datasets/new/", {"file": SimpleUploadedFile("small.zip", _datasets_zip(SMALL_ROWS, tmp_path)),
                                          "task": "truthfulqa"})
    assert resp.status_code == 200, resp.content[:2000]
    assert not Dataset.objects.exists()  # the preview writes nothing but the staged file
    staged = StagedUpload.objects.get(owner=owner)
    resp = client.post("/datasets/new/confirm/", {"token": staged.token})
    assert resp.status_code == 302
    assert Dataset.objects.get().examples.count() == 8


def test_a_parquet_label_set_imports_with_its_nulls_left_unlabeled(owner_api, dataset):
    rows = [{"id": r["id"], "label": (None if i == 3 else i % 3 == 0), "score": float(i)}
            for i, r in enumerate(SMALL_ROWS)]
    resp = owner_api.post(f"/api/datasets/{dataset.pk}/labelsets/",
                          {"file": SimpleUploadedFile("labels.parquet", _parquet(rows)), "kind": "human",
                           "name": "parquet"}, format="multipart")
    assert resp.status_code == 201, resp.content
    label_set = LabelSet.objects.get(pk=resp.json()["id"])
    assert label_set.labels.count() == 7 and label_set.partial
    assert label_set.labels.get(example__external_id="q0-0").value is True


BAD_TABLES = [
    ("nested column", "bad.parquet",
     lambda tmp: _parquet(pa.table({"question": ["q"], "choice": ["c"], "tags": pa.array([["a", "b"]])})), "tags"),
    ("wrong column type", "bad.parquet",
     lambda tmp: _parquet(pa.table({"question": ["q"], "choice": pa.array([b"\x00"])})), "choice"),
    ("truncated parquet", "cut.parquet", lambda tmp: _parquet(SMALL_ROWS)[:300], None),
    ("zip path outside its folder", "evil.zip", lambda tmp: _zip_with("../../etc/evil.json"), "../../etc/evil.json"),
    ("truncated zip", "cut.zip", lambda tmp: _datasets_zip(SMALL_ROWS, tmp)[:-300], None),
    ("missing field", "missing.parquet", lambda tmp: _parquet([{"question": "q"}]), "choice"),
]


def _zip_with(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("small/state.json", "{}")
        archive.writestr(member, "[]")
    return buffer.getvalue()


@pytest.mark.parametrize(("case", "filename", "make", "field"), BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_a_bad_table_gets_a_400_naming_what_is_wrong_and_nothing_is_stored(case, filename, make, field, owner_api,
                                                                          tmp_path):
    before = counts()
    resp = _upload(owner_api, filename, make(tmp_path))
    assert resp.status_code == 400, resp.content
    first = resp.json()["problems"][0]
    assert first["file"] == filename and first["field"] == field, first
    assert counts() == before


def test_upload_limits_apply_to_what_a_table_holds(owner_api, settings):
    settings.ICM_MAX_UPLOAD_BYTES = 200_000
    small_file = _parquet([{"question": "q" * 50_000, "choice": f"c{i}"} for i in range(10)])
    assert len(small_file) < 200_000
    before = counts()
    resp = _upload(owner_api, "big.parquet", small_file)
    assert resp.status_code == 400 and "uncompressed" in resp.json()["problems"][0]["message"]
    settings.ICM_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
    settings.ICM_MAX_ROWS = 5
    resp = _upload(owner_api, "rows.parquet", _parquet(SMALL_ROWS))
    assert resp.status_code == 400 and "the limit is 5" in resp.json()["problems"][0]["message"]
    assert counts() == before


@pytest.fixture
def labeled(owner, dataset):
    import_label_set(user=owner, dataset=dataset, filename="m.jsonl", kind="icm", name="icm", model="gemma",
                     data=jsonl([{"id": "q0-0", "label": 1, "score": 1.5}, {"id": "q0-1", "label": 0, "score": -0.5},
                                 {"id": "q1-0", "label": 1, "score": None}]))
    return dataset


def test_a_label_set_exports_as_typed_parquet_that_reimports_to_the_same_labels(owner_api, labeled, owner):
    icm = LabelSet.objects.get(dataset=labeled, name="icm")
    resp = owner_api.get(f"/api/labelsets/{icm.pk}/export/?format=parquet")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/vnd.apache.parquet"
    assert resp["Content-Disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.schema.field("label").type == pa.bool_() and table.schema.field("score").type == pa.float64()
    assert table.column("id").to_pylist() == ["q0-0", "q0-1", "q1-0"]
    assert table.column("label").to_pylist() == [True, False, True]
    assert table.column("score").to_pylist() == [1.5, -0.5, None]
    assert set(table.column("kind").to_pylist()) == {"icm"} and set(table.column("model").to_pylist()) == {"gemma"}
    again = import_label_set(user=owner, dataset=labeled, filename="icm.parquet", kind="icm", name="again",
                             data=resp.content)
    assert sorted(again.labels.values_list("example__external_id", "value", "score")) == \
        sorted(icm.labels.values_list("example__external_id", "value", "score"))


def test_the_dataset_exports_as_parquet_with_every_label_set_side_by_side(owner_api, labeled):
    resp = owner_api.get(f"/api/datasets/{labeled.pk}/export/?format=parquet")
    assert resp.status_code == 200
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.num_rows == 8
    assert table.column("id").to_pylist() == [r["id"] for r in SMALL_ROWS]
    assert table.schema.field("label:icm@v1").type == pa.bool_()
    assert table.column("label:icm@v1").to_pylist() == [True, False, True, None, None, None, None, None]
    assert table.column("score:icm@v1").to_pylist()[:3] == [1.5, -0.5, None]
    assert table.column("label:gold@v1").to_pylist() == [r["label"] for r in SMALL_ROWS]
    assert table.column("consistency_id").to_pylist() == [r["consistency_id"] for r in SMALL_ROWS]
    described = json.loads(table.schema.metadata[b"icm_studio"])["labels"]
    assert described["label:icm@v1"]["kind"] == "icm" and described["label:icm@v1"]["model"] == "gemma"


def test_the_dataset_exports_as_a_datasets_folder_that_load_from_disk_opens(owner_api, labeled, tmp_path):
    resp = owner_api.get(f"/api/datasets/{labeled.pk}/export/?format=datasets")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        archive.extractall(tmp_path)
    (folder,) = [p.parent for p in tmp_path.rglob("state.json")]
    loaded = datasets.load_from_disk(str(folder))
    assert loaded.num_rows == 8
    label = loaded.features["label:icm@v1"]
    assert isinstance(label, datasets.ClassLabel) and label.names == ["False", "True"]
    assert isinstance(loaded.features["label:gold@v1"], datasets.ClassLabel)
    assert loaded["label:icm@v1"] == [1, 0, 1, None, None, None, None, None]
    assert loaded["question"] == [r["question"] for r in SMALL_ROWS]
    assert "label:icm@v1" in loaded.info.description
    # What a trainer does next: keep the labeled rows of one set.
    kept = loaded.filter(lambda row: row["label:icm@v1"] is not None)
    assert kept.num_rows == 3


def test_a_label_sets_datasets_export_holds_the_examples_and_that_sets_labels(owner_api, labeled, tmp_path):
    icm = LabelSet.objects.get(dataset=labeled, name="icm")
    resp = owner_api.get(f"/api/labelsets/{icm.pk}/export/?format=datasets")
    assert resp.status_code == 200
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        archive.extractall(tmp_path)
    (folder,) = [p.parent for p in tmp_path.rglob("state.json")]
    loaded = datasets.load_from_disk(str(folder))
    assert [n for n in loaded.column_names if n.startswith("label:")] == ["label:icm@v1"]


def test_the_pages_offer_every_format(client, owner, labeled):
    client.force_login(owner)
    icm = LabelSet.objects.get(dataset=labeled, name="icm")
    page = client.get(f"/labelsets/{icm.pk}/").content.decode()
    assert "?format=parquet" in page and "?format=datasets" in page
    download = client.get(f"/labelsets/{icm.pk}/download/?format=parquet")
    assert download.status_code == 200 and pq.read_table(io.BytesIO(download.content)).num_rows == 3


def test_an_annotator_gets_no_typed_export_of_labels(labeled, viewer):
    from webapp.datasets.models import Membership, Role

    from .conftest import api_client

    Membership.objects.filter(dataset=labeled, user=viewer).update(role=Role.ANNOTATOR)
    for fmt in ("parquet", "datasets"):
        resp = api_client(viewer).get(f"/api/datasets/{labeled.pk}/export/?format={fmt}")
        assert resp.status_code == 403, resp.content


def test_an_annotators_datasets_export_of_their_set_leaves_out_label_like_fields(owner, viewer):
    from webapp.datasets.models import Membership, Role

    from .conftest import api_client

    rows = [{**r, "candidate_label": "SECRET"} for r in SMALL_ROWS]
    ds = create_dataset(owner=owner, filename="d.jsonl", data=jsonl(rows), task="truthfulqa")
    Membership.objects.create(dataset=ds, user=viewer, role=Role.ANNOTATOR)
    own = import_label_set(user=owner, dataset=ds, filename="a.jsonl", kind="human", name="mine",
                           data=jsonl([{"id": "q0-0", "label": 1}]))
    own.annotator = viewer
    own.save()
    resp = api_client(viewer).get(f"/api/labelsets/{own.pk}/export/?format=datasets")
    assert resp.status_code == 200, resp.content
    assert b"SECRET" not in zipfile.ZipFile(io.BytesIO(resp.content)).read(
        next(n for n in zipfile.ZipFile(io.BytesIO(resp.content)).namelist() if n.endswith(".arrow")))
    owners = api_client(owner).get(f"/api/labelsets/{own.pk}/export/?format=datasets")
    assert b"SECRET" in b"".join(zipfile.ZipFile(io.BytesIO(owners.content)).read(n)
                                 for n in zipfile.ZipFile(io.BytesIO(owners.content)).namelist())


def test_a_lone_surrogate_is_refused_by_row_and_field_where_the_database_could_not_store_it(owner_api):
    before = counts()
    resp = _upload(owner_api, "s.json", b'[{"id": "a", "question": "q", "choice": "c"}, '
                                        b'{"id": "b", "question": "q\\ud800?", "choice": "c"}]')
    assert resp.status_code == 400, resp.content
    first = resp.json()["problems"][0]
    assert (first["row"], first["field"]) == (2, "question") and "lone surrogate" in first["message"]
    assert counts() == before
