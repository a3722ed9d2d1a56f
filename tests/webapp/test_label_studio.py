"""Label Studio both ways, without a Label Studio server: its exports as it writes them (tests/data/label_studio,
made by Label Studio 1.23.2) read into label sets, our tasks and labeling config written, the round trip within
ICM Studio, every kind of bad file refused with its task and field and nothing written, and who may do what.
tests/test_label_studio_server.py takes the same round trip through a real server."""

from __future__ import annotations

import io
import json
import math
import xml.etree.ElementTree as ET

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.datasets.label_studio import read_model_version
from webapp.datasets.label_studio_export import model_version_of, sigmoid
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetSource, Membership, Role

from ..conftest import ROOT
from .conftest import api_client, counts, make_user

FIXTURES = ROOT / "tests" / "data" / "label_studio"
# A project of six of the small dataset's examples (Choices "verdict": Correct / Incorrect): predictions of
# "claim-bert v3" on four, a@example.com labels four (one twice: the later label counts), bob@example.com
# three and skips one, and two ground-truth annotations. Exported with predictions and annotators expanded
# (the export API's serialization options), and as the plain export (predictions and annotators by id).
FULL = FIXTURES / "small_claims.json"
IDS_ONLY = FIXTURES / "small_claims_ids_only.json"


def _labels(label_set: LabelSet) -> dict[str, tuple[bool, float | None]]:
    return {lab.example.external_id: (lab.value, lab.score) for lab in label_set.labels.select_related("example")}


def _upload(data: bytes | str, name: str = "export.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data.encode() if isinstance(data, str) else data)


def _import(client, dataset, data, **options):
    return client.post(f"/api/datasets/{dataset.pk}/label-studio/", {"file": _upload(data), **options},
                       format="multipart")


def _body(resp) -> str:
    return b"".join(resp.streaming_content).decode()


def _region(word: str, from_name: str = "verdict") -> list[dict]:
    return [{"from_name": from_name, "to_name": "choice", "type": "choices", "value": {"choices": [word]}}]


def _task(ex_id: str, *words: str, **extra) -> dict:
    return {"data": {"id": ex_id, "question": "q?", "choice": "c"},
            "annotations": [{"completed_by": 1, "result": _region(w)} for w in words], **extra}


@pytest.fixture
def alice(dataset):
    """A member whose email is the Label Studio annotator's."""
    user = make_user("alice")
    user.email = "a@example.com"
    user.save()
    Membership.objects.create(dataset=dataset, user=user, role=Role.ANNOTATOR)
    return user


@pytest.mark.django_db
def test_import_a_real_export(owner_api, dataset, alice):
    make_user("bob").__class__.objects.filter(username="bob").update(email="bob@example.com")  # not a member
    resp = _import(owner_api, dataset, FULL.read_bytes(), true_choice="Correct")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert [(s["kind"], s["name"], s["version"]) for s in body] == [
        ("baseline", "claim-bert v3", 1), ("gold", "gold", 2), ("human", "a@example.com", 1),
        ("human", "bob@example.com", 1)]
    sets = {s.name: s for s in LabelSet.objects.filter(pk__in=[s["id"] for s in body])}
    assert _labels(sets["gold"]) == {"q0-0": (True, None), "q0-1": (False, None)}
    # a@example.com labeled q0-1 Correct, then Incorrect: the later one counts; the ground truth is gold's.
    assert _labels(sets["a@example.com"]) == {"q0-0": (True, None), "q0-1": (False, None), "q1-0": (False, None),
                                              "q1-1": (True, None)}
    # bob skipped q2-1 (a cancelled annotation): no label there.
    assert _labels(sets["bob@example.com"]) == {"q0-0": (False, None), "q1-0": (False, None), "q2-0": (True, None)}
    assert _labels(sets["claim-bert v3"]) == {"q0-0": (True, 0.55), "q0-1": (False, 0.65), "q1-0": (True, 0.75),
                                              "q1-1": (False, 0.85)}
    # The annotator is the member of that email; bob has an account but is no member: no one is named.
    assert sets["a@example.com"].annotator == alice and sets["bob@example.com"].annotator is None
    assert sets["claim-bert v3"].model == "claim-bert v3" and sets["claim-bert v3"].source == LabelSetSource.IMPORT
    assert all(s.partial and s.source_name == "export.json" for s in sets.values())


@pytest.mark.django_db
def test_import_the_plain_export(owner_api, dataset):
    """Label Studio's plain export names annotators and predictions by id only: annotations still import."""
    resp = _import(owner_api, dataset, IDS_ONLY.read_bytes(), true_choice="Correct")
    assert resp.status_code == 201, resp.content
    assert sorted((s["kind"], s["name"], s["n_labels"]) for s in resp.json()) == [
        ("gold", "gold", 2), ("human", "Label Studio user 1", 4), ("human", "Label Studio user 2", 3)]


@pytest.mark.django_db
def test_a_new_dataset_from_an_export(owner_api):
    before = counts()
    form = {"file": _upload(FULL.read_bytes(), "claims.json"), "task": "truthfulqa", "true_choice": "Correct",
            "dry_run": "true"}
    resp = owner_api.post("/api/datasets/", form, format="multipart")
    assert resp.status_code == 200, resp.content
    preview = resp.json()
    assert preview["rows"] == 6 and {"question", "choice", "consistency_id"} <= set(preview["fields"])
    assert {(s["kind"], s["name"], s["labels"]) for s in preview["label_sets"]} == {
        ("gold", "gold", 2), ("human", "a@example.com", 4), ("human", "bob@example.com", 3),
        ("baseline", "claim-bert v3", 4)}
    assert counts() == before
    form.update(file=_upload(FULL.read_bytes(), "claims.json"), dry_run="false", name="From LS")
    resp = owner_api.post("/api/datasets/", form, format="multipart")  # detected as a Label Studio export
    assert resp.status_code == 201, resp.content
    ds = Dataset.objects.get(pk=resp.json()["id"])
    assert list(Example.objects.filter(dataset=ds).values_list("external_id", flat=True)) == [
        "q0-0", "q0-1", "q1-0", "q1-1", "q2-0", "q2-1"]
    assert Example.objects.get(dataset=ds, external_id="q1-0").fields == {
        "id": "q1-0", "question": "Question 1?", "choice": "Answer <b>2</b>", "consistency_id": 1}
    assert sorted(LabelSet.objects.filter(dataset=ds).values_list("name", flat=True)) == [
        "a@example.com", "bob@example.com", "claim-bert v3", "gold"]


@pytest.mark.django_db
def test_a_new_dataset_needs_the_presets_fields_and_names_the_task(owner_api):
    tasks = [_task("a", "True"), {"data": {"id": "b", "question": "q?"}, "annotations": []}]
    before = counts()
    resp = owner_api.post("/api/datasets/", {"file": _upload(json.dumps(tasks)), "task": "truthfulqa"},
                          format="multipart")
    assert resp.status_code == 400, resp.content
    assert [(p["row"], p["field"]) for p in resp.json()["problems"]] == [(2, "choice")]
    assert counts() == before


@pytest.fixture
def labeled(dataset, alice, owner):
    """The small dataset with a run's ICM labels (log-odds), a consensus set (confidences), and alice's."""
    ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
    icm = LabelSet.objects.create(dataset=dataset, kind="icm", name="icm run 7", source=LabelSetSource.RUN,
                                  model="gemma-3-270m", configuration={"run": 7, "method": "icm", "seed": 3,
                                                                       "config": {"readout": "split"}})
    scores = {"q0-0": 2.5, "q0-1": -1.25, "q1-0": 40.0, "q1-1": -0.001, "q2-0": None, "q2-1": 0.3}
    Label.objects.bulk_create(Label(label_set=icm, example_id=ids[k], value=(s or 0) >= 0 if k != "q2-1" else False,
                                    score=s) for k, s in scores.items())
    cons = LabelSet.objects.create(dataset=dataset, kind="icm", name="icm consensus", source=LabelSetSource.RUN,
                                   configuration={"method": "icm-consensus", "consensus": {"runs": [7, 8]}})
    Label.objects.bulk_create([Label(label_set=cons, example_id=ids["q0-0"], value=True, score=1.0),
                               Label(label_set=cons, example_id=ids["q0-1"], value=False, score=0.5)])
    human = LabelSet.objects.create(dataset=dataset, kind="human", name="alice's", source=LabelSetSource.ANNOTATION,
                                    annotator=alice)
    Label.objects.bulk_create([Label(label_set=human, example_id=ids["q0-0"], value=False),
                               Label(label_set=human, example_id=ids["q3-1"], value=True)])
    return dataset


@pytest.mark.django_db
def test_export_shape(owner_api, labeled):
    resp = owner_api.get(f"/api/datasets/{labeled.pk}/export/?format=label-studio")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("application/json") and "attachment" in resp["Content-Disposition"]
    tasks = json.loads(_body(resp))
    assert len(tasks) == 8
    first = tasks[0]
    assert first["data"] == {"id": "q0-0", "question": "Question 0?", "choice": "Answer <b>0</b>",
                             "consistency_id": 0}
    preds = {p["model_version"]: p for p in first["predictions"]}
    run = "icm run 7 v1 [icm; run 7; readout split; seed 3; model gemma-3-270m; score P(label) from log-odds]"
    assert set(preds) == {run, "icm consensus v1 [icm; consensus of runs 7, 8]"}
    assert preds[run]["score"] == pytest.approx(sigmoid(2.5))
    assert preds[run]["result"] == [{"from_name": "label", "to_name": "choice", "type": "choices",
                                     "value": {"choices": ["True"]}, "icm_score": 2.5}]
    assert preds["icm consensus v1 [icm; consensus of runs 7, 8]"]["score"] == 1.0
    # q0-1 is labeled False with log-odds -1.25: the confidence in False.
    assert {p["model_version"]: p["score"] for p in tasks[1]["predictions"]}[run] == pytest.approx(sigmoid(1.25))
    assert first["annotations"] == [
        {"result": _region("True", "label"), "ground_truth": True, "was_cancelled": False},
        {"result": _region("False", "label"), "ground_truth": False, "was_cancelled": False,
         "completed_by": {"email": "a@example.com"}},
    ]
    assert [p for p in tasks[4]["predictions"] if "score" not in p]  # a label without a score


@pytest.mark.django_db
def test_export_options_and_labeling_config(owner_api, labeled):
    query = "true_choice=Yes&false_choice=No&from_name=verdict&to_name=question"
    icm = LabelSet.objects.get(dataset=labeled, name="icm run 7")
    tasks = json.loads(_body(owner_api.get(f"/api/labelsets/{icm.pk}/export/?format=label-studio&{query}")))
    assert len(tasks) == 8 and all(not t["annotations"] for t in tasks)  # every example; this set's labels
    assert tasks[1]["predictions"][0]["result"][0]["value"] == {"choices": ["No"]}
    assert tasks[1]["predictions"][0]["result"][0]["from_name"] == "verdict"
    resp = owner_api.get(f"/api/datasets/{labeled.pk}/export/?format=label-studio-config&{query}")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("application/xml")
    view = ET.fromstring(resp.content)
    assert [(t.tag, t.get("name"), t.get("value")) for t in view.findall("Text")] == [
        ("Text", "question", "$question"), ("Text", "choice", "$choice")]
    choices = view.find("Choices")
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("verdict", "question", "single")
    assert [c.get("value") for c in choices.findall("Choice")] == ["Yes", "No"]
    default = ET.fromstring(owner_api.get(f"/api/labelsets/{icm.pk}/export/?format=label-studio-config").content)
    assert (default.find("Choices").get("name"), default.find("Choices").get("toName")) == ("label", "choice")
    for bad in ("true_choice=No&false_choice=No", "from_name=choice", "to_name=not%20a%20name", "true_choice=a%0Ab"):
        resp = owner_api.get(f"/api/labelsets/{icm.pk}/export/?format=label-studio&{bad}")
        assert resp.status_code == 400, bad


@pytest.mark.django_db
def test_round_trip_within_icm_studio(owner_api, labeled):
    text = _body(owner_api.get(f"/api/datasets/{labeled.pk}/export/?format=label-studio"))
    originals = {s.name: s for s in LabelSet.objects.filter(dataset=labeled)}
    resp = _import(owner_api, labeled, text)  # True and False need no true_choice
    assert resp.status_code == 201, resp.content
    back = {s["name"]: LabelSet.objects.get(pk=s["id"]) for s in resp.json()}
    assert set(back) == {"icm run 7", "icm consensus", "gold", "a@example.com"}
    for name, original in (("icm run 7", "icm run 7"), ("icm consensus", "icm consensus"), ("gold", "gold"),
                           ("a@example.com", "alice's")):
        assert _labels(back[name]) == _labels(originals[original]), name  # scores exactly, 40 nats included
        assert back[name].kind == originals[original].kind
    assert back["a@example.com"].annotator == originals["alice's"].annotator
    assert back["icm run 7"].version == 2 and back["icm run 7"].configuration["model_version"].startswith(
        "icm run 7 v1 [icm; run 7")
    # Without the exact score (a tool that dropped it), the log-odds come back from the confidence.
    tasks = json.loads(text)
    for t in tasks:
        for p in t["predictions"]:
            p["result"][0].pop("icm_score", None)
    resp = _import(owner_api, labeled, json.dumps(tasks))
    again = next(LabelSet.objects.get(pk=s["id"]) for s in resp.json() if s["name"] == "icm run 7")
    for ex, (value, score) in _labels(again).items():
        want_value, want = _labels(originals["icm run 7"])[ex]
        assert value == want_value
        assert score == want or math.isclose(score, want, rel_tol=1e-9) or (want == 40.0 and score > 34), ex


def test_model_version_reads_back():
    mv = model_version_of(name="odd [name]; v2", version=3, kind="baseline", configuration={"seed": 0},
                          model="org/m[1]", run=None, log_odds=False)
    assert read_model_version(mv) == ("baseline", "odd [name]; v2", False)
    assert read_model_version("claim-bert v3") == ("baseline", "claim-bert v3", False)
    assert read_model_version("") == ("baseline", "undefined", False)


BAD = {
    "not json": ("{", None, None),
    "an object": ('{"data": {}}', None, None),
    "no data": (json.dumps([_task("q0-0", "True"), {"annotations": []}]), 2, "data"),
    "annotations not a list": (json.dumps([{"data": {"id": "q0-0"}, "annotations": {}}]), 1, "annotations"),
    "unknown example": (json.dumps([_task("q0-0", "True"), _task("nope", "False")]), 2, "data.id"),
    "duplicate example": (json.dumps([_task("q0-0", "True"), _task("q0-0", "False")]), 2, "data.id"),
    "three choices": (json.dumps([_task("q0-0", "True"), _task("q0-1", "False"), _task("q1-0", "Maybe")]), 3,
                      "annotations[0].result[0].value.choices"),
    "two choices at once": (json.dumps([{"data": {"id": "q0-0"}, "annotations": [
        {"result": [{"from_name": "verdict", "type": "choices", "value": {"choices": ["True", "False"]}}]}]}]), 1,
        "annotations[0].result[0].value.choices"),
    "a score that is no number": (json.dumps([{"data": {"id": "q0-0"}, "predictions": [
        {"model_version": "m", "score": "high", "result": _region("True")}]}]), 1, "predictions[0].score"),
    "no label": (json.dumps([{"data": {"id": "q0-0"}, "annotations": []}]), None, "result"),
    "words that are no labels": (json.dumps([_task("q0-0", "Correct")]), None, "true_choice"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_write_nothing(case, owner_api, dataset):
    data, row, fld = BAD[case]
    before = counts()
    resp = _import(owner_api, dataset, data)
    assert resp.status_code == 400, resp.content
    problem = resp.json()["problems"][0]
    assert (problem["row"], problem["field"]) == (row, fld), problem
    assert counts() == before


@pytest.mark.django_db
def test_a_choice_neither_true_nor_the_other(owner_api, dataset):
    data = json.dumps([_task("q0-0", "Yes"), _task("q0-1", "No")])
    resp = _import(owner_api, dataset, data, true_choice="Perhaps")
    assert resp.status_code == 400
    assert resp.json()["problems"][0]["row"] == 2 and "neither" in resp.json()["problems"][0]["message"]
    resp = _import(owner_api, dataset, json.dumps([_task("q0-0", "Yes"), _task("q0-1", "No")]), true_choice="Yes")
    assert resp.status_code == 201 and resp.json()[0]["n_true"] == 1


@pytest.mark.django_db
def test_several_choices_controls_need_from_name(owner_api, dataset):
    tasks = [_task("q0-0", "True"), {"data": {"id": "q0-1"}, "annotations": [{"result": _region("x", "topic")}]}]
    resp = _import(owner_api, dataset, json.dumps(tasks))
    assert resp.status_code == 400 and resp.json()["problems"][0]["field"] == "from_name"
    resp = _import(owner_api, dataset, json.dumps(tasks), from_name="verdict")
    assert resp.status_code == 201 and resp.json()[0]["n_labels"] == 1
    resp = _import(owner_api, dataset, json.dumps(tasks), from_name="nope")
    assert resp.status_code == 400 and resp.json()["problems"][0]["field"] == "from_name"


@pytest.mark.django_db
def test_names_are_stored_without_control_characters(owner_api, dataset):
    task = {"data": {"id": "q0-0"}, "annotations": [{"completed_by": {"email": "nul\u0000@x.org"},
                                                     "result": _region("True")}],
            "predictions": [{"model_version": "m\u0000 v1\ud800", "result": _region("False")}]}
    resp = _import(owner_api, dataset, json.dumps([task]))  # JSON escapes: a NUL and a lone surrogate
    assert resp.status_code == 201, resp.content
    assert sorted(s["name"] for s in resp.json()) == ["m v1", "nul@x.org"]


@pytest.mark.django_db
def test_who_may_import_and_export(dataset, owner, viewer, stranger, labeled):
    plain = json.dumps([_task("q0-0", "True")])
    gold = json.dumps([{**_task("q0-0", "True"), "annotations": [{"ground_truth": True, "result": _region("True")}]}])
    assert _import(api_client(stranger), dataset, plain).status_code == 404
    assert _import(api_client(viewer), dataset, plain).status_code == 403
    reviewer = make_user("rita")
    Membership.objects.create(dataset=dataset, user=reviewer, role=Role.REVIEWER)
    before = counts()
    assert _import(api_client(reviewer), dataset, gold).status_code == 403  # gold is the owner's
    assert counts() == before
    assert _import(api_client(reviewer), dataset, plain).status_code == 201
    # Annotators label blind: no dataset export, no other set's export; their own set without hidden fields.
    annotator = Membership.objects.get(dataset=dataset, user__username="alice").user
    client = api_client(annotator)
    assert client.get(f"/api/datasets/{dataset.pk}/export/?format=label-studio").status_code == 403
    icm = LabelSet.objects.get(dataset=dataset, name="icm run 7")
    assert client.get(f"/api/labelsets/{icm.pk}/export/?format=label-studio").status_code == 404
    own = LabelSet.objects.get(dataset=dataset, name="alice's")
    Example.objects.filter(dataset=dataset, external_id="q0-0").update(
        fields={"id": "q0-0", "question": "q", "choice": "c", "ref_answer": "secret"})
    tasks = json.loads(_body(client.get(f"/api/labelsets/{own.pk}/export/?format=label-studio")))
    assert tasks[0]["data"] == {"id": "q0-0", "question": "q", "choice": "c"}
    assert api_client(viewer).get(f"/api/datasets/{dataset.pk}/export/?format=label-studio").status_code == 200


@pytest.mark.django_db
def test_the_pages(client, owner, dataset):
    client.force_login(owner)
    page = client.get(f"/datasets/{dataset.pk}/labelsets/").content.decode()
    assert "Import a Label Studio export" in page
    settings_page = client.get(f"/datasets/{dataset.pk}/settings/").content.decode()
    assert "?format=label-studio" in settings_page and "?format=label-studio-config" in settings_page
    before = counts()
    resp = client.post(f"/datasets/{dataset.pk}/labelsets/label-studio/",
                       {"file": _upload(FULL.read_bytes()), "true_choice": "Nope"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 400 and "neither" in resp.content.decode() and counts() == before
    resp = client.post(f"/datasets/{dataset.pk}/labelsets/label-studio/",
                       {"file": _upload(FULL.read_bytes()), "true_choice": "Correct"})
    assert resp.status_code == 302
    assert LabelSet.objects.filter(dataset=dataset, name="claim-bert v3").exists()
    resp = client.post("/datasets/new/", {"file": io.BytesIO(FULL.read_bytes()), "task": "truthfulqa",
                                          "name": "Paged LS", "true_choice": "Correct"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200, resp.content
    html = resp.content.decode()
    assert "Import 6 examples" in html and "claim-bert v3 (baseline: 4 labels, 2 true)" in html
    assert client.post("/datasets/new/confirm/", {"token": resp.context["token"]}).status_code == 302
    assert LabelSet.objects.filter(dataset__name="Paged LS").count() == 4


@pytest.mark.django_db
def test_a_control_name_that_is_not_text_names_no_control(owner_api, dataset):
    # A list where the control's name goes: no 500, and the result is read as no label of any control.
    odd = [{"data": {"id": "q0-0"}, "annotations": [
        {"completed_by": 1, "result": [{"from_name": ["x"], "type": "choices", "value": {"choices": ["True"]}}]}]},
        _task("q0-1", "False"), _task("q1-0", "True")]
    before = counts()
    resp = _import(owner_api, dataset, json.dumps(odd))
    assert resp.status_code == 201, resp.content
    (human,) = LabelSet.objects.filter(pk__in=[s["id"] for s in resp.json()])
    assert set(_labels(human)) == {"q0-1", "q1-0"}
    assert counts()[2] == before[2] + 1


@pytest.mark.django_db
def test_a_new_dataset_keeps_an_id_as_the_export_gives_it(owner_api):
    # An id that starts with an apostrophe is stored as it is: the labels go to that example, not a 500.
    tasks = [{"data": {"id": "'=x", "question": "q?", "choice": "a", "consistency_id": 1},
              "annotations": [{"completed_by": 1, "result": _region("True")}]},
             {"data": {"id": "plain", "question": "q?", "choice": "b", "consistency_id": 1},
              "annotations": [{"completed_by": 1, "result": _region("False")}]}]
    resp = owner_api.post("/api/datasets/", {"file": _upload(json.dumps(tasks)), "task": "truthfulqa",
                                             "format": "label-studio"}, format="multipart")
    assert resp.status_code == 201, resp.content
    (human,) = LabelSet.objects.filter(dataset_id=resp.json()["id"], kind="human")
    assert _labels(human) == {"'=x": (True, None), "plain": (False, None)}


@pytest.mark.django_db
def test_a_bad_export_option_on_the_page_is_a_400_not_a_500(client, owner, labeled):
    client.force_login(owner)
    for url in (f"/datasets/{labeled.pk}/download/", f"/labelsets/{LabelSet.objects.filter(dataset=labeled).first().pk}"
                "/download/"):
        resp = client.get(url, {"format": "label-studio", "true_choice": "same", "false_choice": "same"})
        assert resp.status_code == 400, (url, resp.content[:300])
        assert b"differ" in resp.content
