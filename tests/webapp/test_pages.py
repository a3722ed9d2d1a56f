"""The browser pages: sign-in, lists, detail with htmx partials, escaping of dataset text."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from webapp.datasets.models import Dataset, LabelSet, Membership, Role
from webapp.datasets.services import create_dataset
from webapp.settings import redis_caches

from .conftest import SMALL_ROWS, api_client, jsonl, make_user


def test_login_page_and_sign_in(client, owner):
    assert client.get("/accounts/login/").status_code == 200
    resp = client.post("/accounts/login/", {"username": "olivia", "password": "olivia-Pa55word!"})
    assert resp.status_code == 302 and resp.url == "/datasets/"
    assert client.get("/datasets/").status_code == 200
    resp = client.post("/accounts/logout/")
    assert resp.status_code == 302
    assert client.get("/datasets/").status_code == 302


def test_sign_in_is_rate_limited_per_address_with_the_api(client, owner):
    from rest_framework.test import APIClient

    for _ in range(6):
        resp = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
        assert resp.status_code == 200 and "correct username and password" in resp.content.decode()
    # The token endpoint draws on the same budget of 10 a minute for this address.
    api = APIClient()
    for _ in range(4):
        assert api.post("/api/auth/token/", {"username": "olivia", "password": "wrong"}).status_code == 400
    resp = client.post("/accounts/login/", {"username": "olivia", "password": "olivia-Pa55word!"})
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session  # refused before the password was checked
    assert api.post("/api/auth/token/", {"username": "olivia", "password": "olivia-Pa55word!"}).status_code == 429
    assert client.get("/accounts/login/").status_code == 200  # the page itself still shows


def test_sign_in_works_while_the_rate_limit_cache_is_down(client, owner, settings):
    # A real Redis cache where nothing listens: the limit cannot be counted, sign-in must not break.
    settings.CACHES = redis_caches("redis://127.0.0.1:9/0")
    resp = client.post("/accounts/login/", {"username": "olivia", "password": "olivia-Pa55word!"})
    assert resp.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)


def test_dataset_list_shows_only_my_datasets(client, dataset, owner, stranger):
    create_dataset(owner=stranger, filename="theirs.jsonl", data=jsonl([{"question": "q", "choice": "c"}]),
                   task="truthfulqa", name="Theirs")
    client.force_login(owner)
    html = client.get("/datasets/").content.decode()
    assert "Small" in html and "Theirs" not in html


def test_the_dataset_tabs(client, dataset, owner):
    """Data (the default), Runs (with the label sets), Members and settings: each its own address."""
    client.force_login(owner)
    data = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "8 examples" in data and 'data-tab="data" aria-current="page"' in data
    assert "Answer &lt;b&gt;1&lt;/b&gt;" in data and "Answer <b>1</b>" not in data  # dataset text is escaped
    labelsets = client.get(f"/datasets/{dataset.pk}/labelsets/").content.decode()
    assert "gold v1" in labelsets and "Import a label set" in labelsets  # the owner's controls
    assert 'data-tab="runs" aria-current="page"' in labelsets
    settings_page = client.get(f"/datasets/{dataset.pk}/settings/").content.decode()
    assert "Add member" in settings_page and "vic" in settings_page  # members are listed
    assert 'data-tab="settings" aria-current="page"' in settings_page
    tabs = re.findall(r'data-tab="([a-z]+)"', data)
    assert tabs == ["data", "runs", "review", "agreement", "spotchecks", "settings"]


def test_viewer_sees_no_write_controls(client, dataset, viewer):
    client.force_login(viewer)
    for page in ("", "labelsets/", "settings/"):
        html = client.get(f"/datasets/{dataset.pk}/{page}").content.decode()
        assert "Import a label set" not in html and "Add member" not in html and "Delete dataset" not in html


def test_data_view_search_pages_and_exact_ids(client, owner):
    rows = [{"id": f"e{i}", "question": f"question {i}", "choice": f"claim {i}"} for i in range(60)]
    ds = create_dataset(owner=owner, filename="many.jsonl", data=jsonl(rows), task="truthfulqa")
    client.force_login(owner)
    resp = client.get(f"/datasets/{ds.pk}/examples/?page=3", HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert "page 3 of 3" in html and "e50" in html and "<html" not in html
    # The address the browser shows is the page's own state: a reload shows the same rows.
    assert resp["HX-Push-Url"].endswith(f"/datasets/{ds.pk}/examples/?sets=&page=3")
    html = client.get(f"/datasets/{ds.pk}/examples/?q=claim 42").content.decode()
    assert "<html" in html and "1 example matching" in html and "e42" in html
    # An id is matched exactly: "e4" is e4 alone, never e40-e49 (ids are not in the searched text).
    html = client.get(f"/datasets/{ds.pk}/examples/?q=e4").content.decode()
    assert "1 example matching" in html and ">e4<" in html and ">e41<" not in html
    # The dataset's first tab is the data view, its first page.
    page = client.get(f"/datasets/{ds.pk}/").content.decode()
    assert "60 examples" in page and "page 1 of 3" in page and "claim 42" not in page


def test_data_view_shows_label_sets_side_by_side_and_filters_on_them(client, dataset, owner, viewer):
    from webapp.datasets.services import import_label_set

    gold = dataset.label_sets.get(kind="gold")
    model = import_label_set(user=owner, dataset=dataset, filename="m.jsonl", kind="icm", name="model",
                             data=jsonl([{"id": r["id"], "label": True} for r in SMALL_ROWS[:6]]))
    client.force_login(viewer)
    url = f"/datasets/{dataset.pk}/examples/"
    view = client.get(url).context["view"]
    # By default gold beside the newest other set, one column each.
    assert [ls.pk for ls in view.shown] == [gold.pk, model.pk]
    assert [r["labels"] for r in view.rows][:2] == [[True, True], [False, True]]
    assert [r["labels"] for r in view.rows][6:] == [[True, None], [False, None]]  # the model left two out
    html = client.get(url).content.decode()
    assert '<th class="label-col"' in html and 'class="disagree"' in html
    # Where the two disagree: the three gold-False items the model called True.
    view = client.get(f"{url}?sets={gold.pk}&sets={model.pk}&disagree=1").context["view"]
    assert [r["example"].external_id for r in view.rows] == ["q0-1", "q1-1", "q2-1"]
    # Where one set says something: the model's False (none), its missing labels (two).
    assert client.get(f"{url}?sets={model.pk}&label={model.pk}:false").context["view"].page.paginator.count == 0
    view = client.get(f"{url}?sets={model.pk}&label={model.pk}:none").context["view"]
    assert [r["example"].external_id for r in view.rows] == ["q3-0", "q3-1"]
    # A set that is not there, or a filter on a set not shown, is named and left out; nothing fails.
    resp = client.get(f"{url}?sets=99999&sets={gold.pk}&label={model.pk}:true")
    assert resp.status_code == 200 and [ls.pk for ls in resp.context["view"].shown] == [gold.pk]
    assert "Left out: no label set &#x27;99999&#x27;" in resp.content.decode()
    assert resp.context["view"].page.paginator.count == 8


def test_annotators_data_view_shows_no_labels(client, dataset, owner):
    annie = make_user("annie")
    Membership.objects.create(dataset=dataset, user=annie, role=Role.ANNOTATOR)
    client.force_login(annie)
    gold = dataset.label_sets.get(kind="gold")
    resp = client.get(f"/datasets/{dataset.pk}/examples/?sets={gold.pk}&label={gold.pk}:true")
    view = resp.context["view"]
    assert view.shown == [] and view.page.paginator.count == 8 and 'class="label-col"' not in resp.content.decode()


def test_label_import_page_with_htmx(client, dataset, owner):
    client.force_login(owner)
    upload = SimpleUploadedFile("mine.csv", b"id,label\nq0-0,1\nq0-1,0\n")
    resp = client.post(f"/datasets/{dataset.pk}/labelsets/import/", {"file": upload, "kind": "human", "name": "Mine"},
                       HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Imported label set Mine v1" in html and "<html" not in html
    assert LabelSet.objects.get(dataset=dataset, name="Mine").partial
    bad = SimpleUploadedFile("bad.csv", b"id,label\nq0-0,maybe\n")
    resp = client.post(f"/datasets/{dataset.pk}/labelsets/import/", {"file": bad, "kind": "human"},
                       HTTP_HX_REQUEST="true")
    assert resp.status_code == 400
    assert "nothing was written" in resp.content.decode() and "maybe" in resp.content.decode()


def test_label_set_page_and_download(client, dataset, owner):
    client.force_login(owner)
    gold = dataset.label_sets.get(kind="gold")
    html = client.get(f"/labelsets/{gold.pk}/").content.decode()
    assert "8: 4 true, 4 false" in html
    resp = client.get(f"/labelsets/{gold.pk}/download/?format=csv")
    assert resp.status_code == 200
    assert b"".join(resp.streaming_content).decode().splitlines()[0].startswith("id,label,score,kind")


def test_an_owner_invites_someone_new_who_sets_a_password_once(client, dataset, owner, viewer):
    from django.contrib.auth import get_user_model

    client.force_login(viewer)  # only owners invite
    assert client.post(f"/datasets/{dataset.pk}/members/invite/", {"username": "nora", "role": "reviewer"}
                       ).status_code == 403
    client.force_login(owner)
    resp = client.post(f"/datasets/{dataset.pk}/members/invite/", {"username": "nora", "role": "reviewer"},
                       follow=True)
    text = resp.content.decode()
    link = re.search(r"http://testserver(/accounts/set-password/[^/]+/[^/]+/)", text).group(1)
    nora = get_user_model().objects.get(username="nora")
    assert not nora.has_usable_password() and Membership.objects.get(user=nora).role == Role.REVIEWER
    # A taken name or an invalid one is refused, naming why; nothing is made.
    for name, why in (("vic", "already has an account"), ("no spaces", "Enter a valid username")):
        text = client.post(f"/datasets/{dataset.pk}/members/invite/", {"username": name, "role": "viewer"},
                           follow=True).content.decode()
        assert why in text, name
    assert get_user_model().objects.count() == 3
    # Nora opens the link (Django redirects to a link without the token in the address), chooses a password.
    client.logout()
    page = client.get(link, follow=True)
    assert "You were invited to ICM Studio as <strong>nora</strong>" in page.content.decode()
    done = client.post(page.redirect_chain[-1][0], {"new_password1": "a-Long-pa55word", "new_password2":
                                                    "a-Long-pa55word"}, follow=True)
    assert "Your password is set" in done.content.decode()
    assert client.login(username="nora", password="a-Long-pa55word")
    client.logout()
    assert "This link no longer works" in client.get(link, follow=True).content.decode()  # once only
    # A signed-in member changes their own password.
    client.login(username="nora", password="a-Long-pa55word")
    resp = client.post("/accounts/password/", {"old_password": "a-Long-pa55word", "new_password1": "an-Other-pa55",
                                               "new_password2": "an-Other-pa55"}, follow=True)
    assert "Your password is changed" in resp.content.decode()
    client.logout()
    assert client.login(username="nora", password="an-Other-pa55")


def test_members_page_flow(client, dataset, owner):
    make_user("nina")
    client.force_login(owner)
    client.post(f"/datasets/{dataset.pk}/members/", {"username": "nina", "role": "reviewer"})
    nina = Membership.objects.get(dataset=dataset, user__username="nina")
    assert nina.role == Role.REVIEWER
    client.post(f"/datasets/{dataset.pk}/members/{nina.user_id}/", {"action": "role", "role": "viewer"})
    nina.refresh_from_db()
    assert nina.role == Role.VIEWER
    client.post(f"/datasets/{dataset.pk}/members/{nina.user_id}/", {"action": "remove"})
    assert not Membership.objects.filter(pk=nina.pk).exists()
    resp = client.post(f"/datasets/{dataset.pk}/members/{owner.pk}/", {"action": "remove"}, follow=True)
    assert "at least one owner" in resp.content.decode()


def test_owner_deletes_dataset(client, dataset, owner):
    client.force_login(owner)
    assert client.post(f"/datasets/{dataset.pk}/delete/").status_code == 302
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


@pytest.mark.django_db
def test_static_files_are_vendored(client):
    for path in ("/static/vendor/htmx/htmx-2.0.11.min.js", "/static/css/app.css"):
        resp = client.get(path)
        assert resp.status_code == 200, path


def test_bootstrap_demo_is_idempotent(db, capsys):
    from django.core.management import call_command

    call_command("bootstrap_demo")
    first = capsys.readouterr().out
    assert "password" in first
    call_command("bootstrap_demo")
    assert Dataset.objects.filter(name="Sanity claims (demo)").count() == 1
    ds = Dataset.objects.get(name="Sanity claims (demo)")
    assert ds.examples.count() == 140 and ds.label_sets.get(kind="gold").labels.count() == 140


def test_every_page_names_a_favicon_and_favicon_ico_finds_it(client, owner):
    client.force_login(owner)
    assert 'rel="icon"' in client.get("/datasets/").content.decode()
    resp = client.get("/favicon.ico")
    assert resp.status_code == 301 and resp.url.endswith("img/favicon.svg")


def test_a_failed_sign_in_says_so_once(client, owner):
    html = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"}).content.decode()
    assert html.count("Please enter a correct username and password") == 1


def test_a_refusal_is_logged_in_one_line_without_its_traceback():
    """Django logs a 403 with the PermissionDenied's traceback; the server's log (settings.LOGGING) keeps its
    one line, and a server error keeps its traceback."""
    import logging
    import sys

    from django.core.exceptions import PermissionDenied

    from webapp.log_filters import OneLineRefusals

    console = [h for h in logging.getLogger().handlers if any(isinstance(f, OneLineRefusals) for f in h.filters)]
    assert console, "the server's console handler has no refusal filter"
    try:
        raise PermissionDenied("Deleting needs the owner role")
    except PermissionDenied:
        exc = sys.exc_info()

    def logged(status: int) -> str:
        record = logging.getLogger("django.request").makeRecord(
            "django.request", logging.WARNING, __file__, 1, "Forbidden (Permission denied): %s", ("/x/",), exc,
            extra={"status_code": status})
        assert console[0].filter(record)
        return console[0].format(record)

    assert logged(403) == "Forbidden (Permission denied): /x/"
    assert "Traceback" in logged(500)


def test_the_label_set_page_rounds_scores_and_keeps_the_exact_one_in_a_title(client, dataset, owner):
    rows = [{"id": r["id"], "label": True, "score": 0.123456789} for r in SMALL_ROWS]
    api = api_client(owner)
    resp = api.post(f"/api/datasets/{dataset.pk}/labelsets/", {"file": SimpleUploadedFile("m.jsonl", jsonl(rows)),
                                                               "kind": "icm", "name": "m"}, format="multipart")
    assert resp.status_code == 201, resp.content
    client.force_login(owner)
    page = client.get(f"/labelsets/{resp.json()['id']}/").content.decode()
    assert 'title="0.123456789">0.123</td>' in page and ">0.123456789<" not in page
