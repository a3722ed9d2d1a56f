"""The workspace's API (issue 38): the examples endpoint with labels and filters, verdict history, and
invitations by link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from webapp.datasets.models import Dataset, Invitation, Membership, Role
from webapp.datasets.services import create_dataset

from .conftest import SMALL_ROWS, api_client, jsonl, make_user

pytestmark = pytest.mark.django_db


def _human(api, dataset) -> int:
    rows = [{"id": r["id"], "label": r["label"] if i % 3 else not r["label"]} for i, r in enumerate(SMALL_ROWS)]
    rows[1]["label"] = None  # one left unlabeled
    resp = api.post(f"/api/datasets/{dataset.pk}/labelsets/",
                    {"file": SimpleUploadedFile("h.jsonl", jsonl(rows)), "kind": "human", "name": "h"},
                    format="multipart")
    assert resp.status_code == 201, resp.content
    return resp.json()["id"]


def test_examples_carry_the_labels_of_the_sets_named_and_filter_by_disagreement_and_label(dataset, owner):
    api = api_client(owner)
    gold = dataset.label_sets.get(kind="gold").pk
    human = _human(api, dataset)
    rows = api.get(f"/api/datasets/{dataset.pk}/examples/?labelsets={gold},{human}&page_size=100").json()["results"]
    assert [set(r["labels"]) for r in rows] == [{str(gold), str(human)}] * 8
    by_id = {r["external_id"]: r["labels"] for r in rows}
    assert by_id["q0-0"] == {str(gold): True, str(human): False} and by_id["q0-1"][str(human)] is None
    dis = api.get(f"/api/datasets/{dataset.pk}/examples/?disagree={gold},{human}").json()["results"]
    assert {r["external_id"] for r in dis} == {"q0-0", "q1-1", "q3-0"}  # rows 0, 3 and 6 flipped; row 1 unlabeled
    only = api.get(f"/api/datasets/{dataset.pk}/examples/?label={human}:none").json()["results"]
    assert [r["external_id"] for r in only] == ["q0-1"]
    trues = api.get(f"/api/datasets/{dataset.pk}/examples/?label={gold}:true&search=question 2").json()["results"]
    assert [r["external_id"] for r in trues] == ["q2-0"]
    assert api.get(f"/api/datasets/{dataset.pk}/examples/").json()["results"][0]["labels"] == {}


@pytest.mark.parametrize("query", ["labelsets=999999", "disagree=1", "label=1:maybe", "label=abc:true",
                                   "labelsets=1,x"])
def test_bad_label_parameters_are_400_naming_them(dataset, owner, query):
    resp = api_client(owner).get(f"/api/datasets/{dataset.pk}/examples/?{query}")
    assert resp.status_code == 400 and query.split("=")[0] in resp.json()


def test_annotators_get_no_label_parameters(dataset, owner):
    annotator = make_user("ann")
    Membership.objects.create(dataset=dataset, user=annotator, role=Role.ANNOTATOR)
    gold = dataset.label_sets.get(kind="gold").pk
    api = api_client(annotator)
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?labelsets={gold}").status_code == 403
    assert api.get(f"/api/datasets/{dataset.pk}/examples/?label={gold}:true").status_code == 403
    assert api.get(f"/api/datasets/{dataset.pk}/examples/").json()["results"][0]["labels"] == {}


def test_a_second_verdict_supersedes_the_first_and_history_keeps_both(dataset, owner):
    api = api_client(owner)
    example = dataset.examples.first().pk
    first = api.post(f"/api/datasets/{dataset.pk}/verdicts/", {"example": example, "verdict": "icm_wrong"},
                     format="json").json()
    second = api.post(f"/api/datasets/{dataset.pk}/verdicts/", {"example": example, "verdict": "gold_wrong"},
                      format="json").json()
    standing = api.get(f"/api/datasets/{dataset.pk}/verdicts/").json()
    assert [(v["id"], v["verdict"], v["superseded"]) for v in standing] == [(second["id"], "gold_wrong", None)]
    history = api.get(f"/api/datasets/{dataset.pk}/verdicts/?history=1").json()
    assert [(v["id"], v["superseded"]) for v in history] == [(first["id"], second["id"]), (second["id"], None)]
    assert history[0]["retracted"] is not None
    assert api.get(f"/api/datasets/{dataset.pk}/verdicts/?history=yes").status_code == 400


def test_an_invitation_by_api_makes_one_member_with_its_role(client, dataset, owner, viewer):
    api = api_client(owner)
    assert api_client(viewer).post(f"/api/datasets/{dataset.pk}/invitations/", {"role": "annotator"},
                                   format="json").status_code == 403
    made = api.post(f"/api/datasets/{dataset.pk}/invitations/", {"role": "annotator"}, format="json").json()
    assert made["role"] == "annotator" and made["status"] == "open" and made["url"] == f"/invitations/{made['key']}/"
    days = (timezone.datetime.fromisoformat(made["expires"]) - timezone.now()).total_seconds() / 86400
    assert 6.99 < days <= 7
    assert client.get(made["url"]).status_code == 200  # the page, for someone not signed in
    anon = api_client()
    weak = anon.post(f"/api/invitations/{made['key']}/accept/", {"username": "carol", "password": "123"},
                     format="json")
    assert weak.status_code == 400 and "password" in weak.json()
    taken = anon.post(f"/api/invitations/{made['key']}/accept/", {"username": "OLIVIA", "password": "a-Long-pa55"},
                      format="json")
    assert taken.status_code == 400 and "username" in taken.json()
    resp = anon.post(f"/api/invitations/{made['key']}/accept/", {"username": "carol", "password": "a-Long-pa55"},
                     format="json")
    assert resp.status_code == 201
    carol = api_client()
    carol.credentials(HTTP_AUTHORIZATION=f"Token {resp.json()['token']}")
    assert carol.get(f"/api/datasets/{dataset.pk}/").status_code == 200
    gold = dataset.label_sets.get(kind="gold").pk
    assert carol.get(f"/api/labelsets/{gold}/labels/").status_code >= 400  # an annotator labels blind
    again = anon.post(f"/api/invitations/{made['key']}/accept/", {"username": "dave", "password": "a-Long-pa55"},
                      format="json")
    assert again.status_code == 404 and not get_user_model().objects.filter(username="dave").exists()
    listed = api.get(f"/api/datasets/{dataset.pk}/invitations/").json()
    assert [(i["status"], i["accepted_by"]) for i in listed] == [("accepted", "carol")]


def test_revoked_and_expired_invitations_do_not_work(client, dataset, owner):
    api = api_client(owner)
    made = api.post(f"/api/datasets/{dataset.pk}/invitations/", {"role": "viewer"}, format="json").json()
    assert api.delete(f"/api/datasets/{dataset.pk}/invitations/{made['id']}/").status_code == 204
    assert client.get(made["url"]).status_code == 404
    assert api_client().post(f"/api/invitations/{made['key']}/accept/", {"username": "x1", "password": "a-Long-pa55"},
                             format="json").status_code == 404
    later = api.post(f"/api/datasets/{dataset.pk}/invitations/", {"role": "viewer"}, format="json").json()
    Invitation.objects.filter(pk=later["id"]).update(expires=timezone.now() - timedelta(seconds=1))
    assert api_client().post(f"/api/invitations/{later['key']}/accept/", {"username": "x2", "password": "a-Long-pa55"},
                             format="json").status_code == 404
    assert [i["status"] for i in api.get(f"/api/datasets/{dataset.pk}/invitations/").json()] == ["expired", "revoked"]


def test_the_invitation_page_makes_the_account_and_signs_in(client, dataset, owner):
    made = api_client(owner).post(f"/api/datasets/{dataset.pk}/invitations/", {"role": "reviewer"},
                                  format="json").json()
    resp = client.post(made["url"], {"username": "rae", "password1": "a-Long-pa55", "password2": "a-Long-pa55x"})
    assert resp.status_code == 400 and "differ" in resp.content.decode()
    resp = client.post(made["url"], {"username": "rae", "password1": "a-Long-pa55", "password2": "a-Long-pa55"})
    assert resp.status_code == 302 and resp.url == f"/datasets/{dataset.pk}/"
    assert Membership.objects.get(user__username="rae").role == Role.REVIEWER
    assert client.get(f"/datasets/{dataset.pk}/").status_code == 200


@pytest.mark.parametrize("query", ["label=", "labelsets=", "disagree="])
def test_an_empty_label_parameter_is_a_400_not_ignored(dataset, owner, query):
    resp = api_client(owner).get(f"/api/datasets/{dataset.pk}/examples/?{query}")
    assert resp.status_code == 400 and query[:-1] in resp.json()


def test_a_blank_name_is_refused_in_a_form_body_too(dataset, owner):
    resp = api_client(owner).patch(f"/api/datasets/{dataset.pk}/", "name=&description=",
                                   content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400 and "name" in resp.json()


def test_a_text_field_takes_text_only(dataset, owner):
    resp = api_client(owner).patch(f"/api/datasets/{dataset.pk}/", {"guidelines": 0}, format="json")
    assert resp.status_code == 400 and "guidelines" in resp.json()


def test_annotators_are_not_told_how_many_label_sets_there_are(client, dataset, owner):
    annotator = make_user("ann")
    Membership.objects.create(dataset=dataset, user=annotator, role=Role.ANNOTATOR)
    listed = api_client(annotator).get("/api/datasets/").json()["results"]
    assert listed[0]["label_set_count"] is None
    assert api_client(owner).get("/api/datasets/").json()["results"][0]["label_set_count"] == 1
    client.force_login(annotator)
    page = client.get("/datasets/").content.decode()
    assert '<td class="num">–</td>' in page


def test_the_api_root_lists_where_to_go():
    resp = api_client().get("/api/")
    assert resp.status_code == 200 and resp.json()["docs"].endswith("/api/docs/")
    assert set(resp.json()) == {"docs", "redoc", "schema", "token", "datasets", "runs"}


def test_an_agreement_without_what_to_compare_says_so(dataset, owner):
    api = api_client(owner)
    for url in (f"/api/datasets/{dataset.pk}/agreement/", f"/api/datasets/{dataset.pk}/agreement/export/"):
        resp = api.get(url)
        assert resp.status_code == 400 and "labelsets" in resp.json(), url
    gold = dataset.label_sets.get(kind="gold").pk
    resp = api.get(f"/api/labelsets/{gold}/agreement/")
    assert resp.status_code == 400 and "other" in resp.json()


def test_the_dashboard_compares_the_newest_sets_in_natural_order_and_its_download_the_same(client, dataset, owner):
    from webapp.review.selectors import DASHBOARD_SETS

    api = api_client(owner)
    for i in range(1, 11):
        rows = [{"id": r["id"], "label": r["label"] if (j + i) % 4 else not r["label"]}
                for j, r in enumerate(SMALL_ROWS)]
        api.post(f"/api/datasets/{dataset.pk}/labelsets/", {"file": SimpleUploadedFile("r.jsonl", jsonl(rows)),
                                                            "kind": "icm", "name": f"run {i}"}, format="multipart")
    client.force_login(owner)
    page = client.get(f"/datasets/{dataset.pk}/agreement/")
    names = [f"run {ls.name.split()[1]}" for ls in page.context["compared"]]
    assert names == [f"run {i}" for i in range(11 - DASHBOARD_SETS, 11)]  # the newest six, "run 10" last
    download = client.get(f"/datasets/{dataset.pk}/agreement/download/?format=json").json()
    assert len(download["accuracy"]) == DASHBOARD_SETS


def test_an_upload_error_suggests_the_task_whose_fields_the_rows_have_and_never_miscounts(client, owner):
    client.force_login(owner)
    rows = [{"id": i, "question": f"q{i}", "choice": "c", "choice_2": "d", "label": True} for i in range(3)]
    resp = client.post("/datasets/new/", {"file": SimpleUploadedFile("a.jsonl", jsonl(rows)), "task": "gsm8k"})
    text = resp.content.decode()
    assert resp.status_code == 400 and "<strong>truthfulqa</strong>" in text and "choose it as the task" in text
    bad = [{"id": 1, "question": "q", "choice": "c", "label": "maybe"}] * 40
    text = client.post("/datasets/new/", {"file": SimpleUploadedFile("b.jsonl", jsonl(bad)),
                                          "task": "truthfulqa"}).content.decode()
    assert "The first 20 problems (reading stopped there" in text and "(the first 20)" not in text


def test_a_spot_check_item_shows_the_prompt_filled_in_and_no_label_field(client, owner):
    from webapp.review.services import create_spot_check

    rows = [{"id": f"e{i}", "question": f"Question {i}?", "choice": f"Claim {i}", "confidence": "confhi",
             "label": bool(i % 2)} for i in range(6)]
    ds = Dataset.objects.get(pk=create_dataset(owner=owner, filename="d.jsonl", data=jsonl(rows),
                                               task="truthfulqa").pk)
    check = create_spot_check(user=owner, dataset=ds, gold=ds.label_sets.get(kind="gold"), size=4)
    client.force_login(owner)
    text = client.get(f"/spotchecks/{check.pk}/").content.decode()
    assert 'id="spotcheck-prompt"' in text and "{question}" not in text and "Question " in text
    assert "confhi" not in text


def test_undo_after_a_skip_shows_the_undone_example_not_the_skipped_one(client, dataset, owner):
    annotator = make_user("ann")
    Membership.objects.create(dataset=dataset, user=annotator, role=Role.ANNOTATOR)
    client.force_login(annotator)
    first = client.get(f"/datasets/{dataset.pk}/annotate/").context["current"]
    skipped = client.get(f"/datasets/{dataset.pk}/annotate/?after={first.position}").context["current"]
    assert skipped.position == first.position + 1
    nxt = client.get(f"/datasets/{dataset.pk}/annotate/?after={skipped.position}").context["current"]
    client.post(f"/datasets/{dataset.pk}/annotate/label/", {"example": nxt.pk, "value": "true"})
    resp = client.post(f"/datasets/{dataset.pk}/annotate/undo/", follow=True)
    assert resp.context["current"].pk == nxt.pk


def test_every_accuracy_header_names_the_gold_version(client, dataset, owner):
    api = api_client(owner)
    api.post(f"/api/datasets/{dataset.pk}/labelsets/", {"file": SimpleUploadedFile("g.jsonl", jsonl(
        [{"id": r["id"], "label": r["label"]} for r in SMALL_ROWS])), "kind": "gold", "name": "gold"},
        format="multipart")
    from webapp.runs.models import Run

    Run.objects.create(dataset=dataset, created_by=owner, method="zero-shot", task=dataset.task, config={})
    client.force_login(owner)
    for url in (f"/datasets/{dataset.pk}/labelsets/", f"/datasets/{dataset.pk}/runs/panel/",
                f"/datasets/{dataset.pk}/runs/"):
        text = client.get(url).content.decode()
        assert "Accuracy against gold v2" in text or "against gold gold v2" in text, url


def test_a_data_view_row_opens_its_example_in_review(client, dataset, owner):
    rows = [{"id": r["id"], "label": r["label"] if i % 3 else not r["label"], "score": 1.0}
            for i, r in enumerate(SMALL_ROWS)]
    api_client(owner).post(f"/api/datasets/{dataset.pk}/labelsets/", {
        "file": SimpleUploadedFile("m.jsonl", jsonl(rows)), "kind": "icm", "name": "icm"}, format="multipart")
    client.force_login(owner)
    data = client.get(f"/datasets/{dataset.pk}/examples/").content.decode()
    target = dataset.examples.get(external_id="q2-1")
    assert f"/datasets/{dataset.pk}/review/?example={target.pk}" in data
    page = client.get(f"/datasets/{dataset.pk}/review/?example={target.pk}")
    assert page.status_code == 200 and page.context["item"]["example"].pk == target.pk


def test_the_queue_listing_marks_the_items_you_judged(client, dataset, owner):
    rows = [{"id": r["id"], "label": not r["label"], "score": 1.0} for r in SMALL_ROWS]
    api = api_client(owner)
    api.post(f"/api/datasets/{dataset.pk}/labelsets/", {
        "file": SimpleUploadedFile("m.jsonl", jsonl(rows)), "kind": "icm", "name": "icm"}, format="multipart")
    target = dataset.examples.get(external_id="q1-0")
    api.post(f"/api/datasets/{dataset.pk}/verdicts/", {"example": target.pk, "verdict": "icm_wrong"}, format="json")
    client.force_login(owner)
    page = client.get(f"/datasets/{dataset.pk}/review/").content.decode()
    assert page.count('class="judged-mark"') == 1
    assert 'q1-0</a> <span class="muted">' in page.split('class="judged-mark"')[0].rsplit("<li", 1)[1]


def test_the_group_table_shows_what_differs_not_the_shared_question(client, owner):
    question = "What happens if you crack your knuckles a lot? " + "Some context. " * 20
    rows = [{"id": f"k{i}", "question": question, "choice": f"Answer number {i}", "label": i == 0,
             "consistency_id": 1} for i in range(4)]
    ds = Dataset.objects.get(pk=create_dataset(owner=owner, filename="k.jsonl", data=jsonl(rows),
                                               task="truthfulqa").pk)
    api_client(owner).post(f"/api/datasets/{ds.pk}/labelsets/", {"file": SimpleUploadedFile("m.jsonl", jsonl(
        [{"id": r["id"], "label": not r["label"], "score": 1.0} for r in rows])), "kind": "icm", "name": "icm"},
        format="multipart")
    client.force_login(owner)
    item = client.get(f"/datasets/{ds.pk}/review/").context["item"]
    assert item["shared"] == ["question"]
    assert [s["text"] for s in item["siblings"]] == [f"Answer number {i}" for i in range(4)]
