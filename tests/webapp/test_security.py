"""Issue 37's defects, each as it was found: model servers and files are the operator's choice, the sign-in
limits count the real client and the account, roles hold as documented, input and work are bounded."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from rest_framework.authtoken.models import Token

from webapp.datasets.models import Dataset, Membership, Role, StagedUpload
from webapp.datasets.services import stage_upload
from webapp.runs.models import Run, RunStatus

from .conftest import SMALL_ROWS, api_client, counts, jsonl, make_user
from .runs_helpers import FAKE, fake_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(dataset):
    user = make_user("rita")
    Membership.objects.create(dataset=dataset, user=user, role=Role.REVIEWER)
    return user


def _run(client, dataset, **body):
    return client.post("/api/runs/", {"dataset": dataset.pk, "task": dataset.task, "method": "zero-shot",
                                      **body}, format="json")


# -- model servers and model files are the operator's choice ------------------------------------------------------

def test_a_run_cannot_send_the_dataset_to_a_server_the_operator_did_not_list(dataset, reviewer, settings):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(1)
    hits = []

    def accept():
        with contextlib.suppress(OSError):
            hits.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/internal-admin"
    client = api_client(reviewer)
    resp = _run(client, dataset, backend="openai", model="x", base_url=url)
    assert resp.status_code == 400 and "backend" in resp.json() and url not in resp.content.decode()
    # Listed servers are offered; another URL is still refused, without being echoed.
    settings.ICM_OPENAI_BASE_URLS = ["http://models.internal:8000/v1"]
    settings.ICM_OPENAI_MODEL = "served"
    resp = _run(client, dataset, backend="openai", base_url=url)
    assert resp.status_code == 400 and "base_url" in resp.json() and url not in resp.content.decode()
    resp = _run(client, dataset, backend="openai", model="other", base_url="http://models.internal:8000/v1")
    assert resp.status_code == 400 and "model" in resp.json() and "other" not in resp.content.decode()
    assert _run(client, dataset, backend="openai", base_url="http://models.internal:8000/v1/").status_code == 201
    thread.join()
    listener.close()
    assert hits == [] and Run.objects.filter(backend="openai").count() == 1


@pytest.mark.parametrize("model", ["/etc", "~/.cache/icm-studio/models/gemma3-270m", "../../", "gpt2"])
def test_a_run_cannot_name_a_server_path_or_an_unlisted_model(dataset, reviewer, model):
    resp = _run(api_client(reviewer), dataset, backend="transformers", model=model)
    assert resp.status_code == 400 and set(resp.json()) == {"model"}
    assert model not in resp.content.decode() and "unknown model" not in resp.content.decode()
    assert "gemma3-270m" in resp.json()["model"][0]  # what is offered
    assert Run.objects.count() == 0


def test_the_run_form_offers_only_what_the_operator_lists(client, dataset, owner, settings):
    client.force_login(owner)
    page = client.get(f"/datasets/{dataset.pk}/runs/new/").content.decode()
    assert 'value="openai"' not in page and 'value="transformers"' in page
    settings.ICM_OPENAI_BASE_URLS = ["http://models.internal:8000/v1"]
    settings.ICM_ALLOWED_MODELS = ["my-folder-model"]
    page = client.get(f"/datasets/{dataset.pk}/runs/new/").content.decode()
    assert 'value="openai"' in page and "http://models.internal:8000/v1" in page and "my-folder-model" in page


def test_a_failed_run_shows_members_one_line_and_owners_the_traceback(dataset, owner, viewer):
    run = Run.objects.create(dataset=dataset, created_by=owner, method="zero-shot", task=dataset.task,
                             backend=FAKE, status=RunStatus.QUEUED, config={})
    from webapp.runs.execution.runner import one_line

    try:
        open("/srv/icm/secret/models/weights.bin")  # noqa: SIM115
    except OSError as exc:
        Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error=one_line(exc),
                                             error_detail="Traceback ...\n  File \"/srv/icm/runner.py\"")
    seen = api_client(viewer).get(f"/api/runs/{run.pk}/").json()
    assert seen["error"] == "FileNotFoundError: [Errno 2] No such file or directory: 'weights.bin'"
    assert seen["error_detail"] == "" and "/srv" not in json.dumps(seen)
    assert "/srv/icm/runner.py" in api_client(owner).get(f"/api/runs/{run.pk}/").json()["error_detail"]


# -- sign-in limits ------------------------------------------------------------------------------------------------

def test_the_sign_in_limit_holds_across_x_forwarded_for(owner):
    api = api_client()
    codes = [api.post("/api/auth/token/", {"username": "olivia", "password": f"wrong{i}"},
                      HTTP_X_FORWARDED_FOR=f"10.9.8.{i}").status_code for i in range(12)]
    assert codes[:10] == [400] * 10 and codes[10:] == [429, 429]
    resp = api.post("/api/auth/token/", {"username": "olivia", "password": "olivia-Pa55word!"},
                    HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert resp.status_code == 429 and int(resp["Retry-After"]) >= 1


def test_the_sign_in_page_is_limited_across_x_forwarded_for(client, owner):
    codes = [client.post("/accounts/login/", {"username": "olivia", "password": "wrong"},
                         HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(12)]
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]


def test_an_account_backs_off_after_wrong_passwords_from_many_addresses(client, owner, settings):
    settings.ICM_LOGIN_FAILURES = 3
    for i in range(3):
        resp = client.post("/accounts/login/", {"username": "OLIVIA", "password": "wrong"}, REMOTE_ADDR=f"10.1.0.{i}")
        assert resp.status_code == 200
    # The right password, from a fresh address, waits out the account's window: truthfully, in whole seconds.
    resp = client.post("/accounts/login/", {"username": "olivia", "password": "olivia-Pa55word!"},
                       REMOTE_ADDR="10.2.0.1")
    text = resp.content.decode()
    assert resp.status_code == 429 and "for this account" in text and " 0 s" not in text
    assert 1 <= int(resp["Retry-After"]) <= settings.ICM_LOGIN_LOCKOUT_S
    resp = api_client().post("/api/auth/token/", {"username": "olivia", "password": "olivia-Pa55word!"},
                             REMOTE_ADDR="10.2.0.2")
    assert resp.status_code == 429
    # Another account is not affected.
    make_user("otto")
    assert client.post("/accounts/login/", {"username": "otto", "password": "otto-Pa55word!"},
                       REMOTE_ADDR="10.2.0.3").status_code == 302


def test_the_429_never_says_zero_seconds():
    from webapp.accounts.throttles import retry_after

    assert retry_after(0.0) == 1 and retry_after(0.2) == 1 and retry_after(59.1) == 60


# -- roles -----------------------------------------------------------------------------------------------------------

def test_only_owners_create_gold_and_every_gold_version_is_in_the_history(client, dataset, owner, reviewer):
    upload = SimpleUploadedFile("g.jsonl", jsonl([{"id": "q0-0", "label": True}]))
    resp = api_client(reviewer).post(f"/api/datasets/{dataset.pk}/labelsets/",
                                     {"file": upload, "kind": "gold", "name": "gold"}, format="multipart")
    assert resp.status_code == 403
    assert dataset.label_sets.filter(kind="gold").count() == 1
    upload = SimpleUploadedFile("g.jsonl", jsonl([{"id": r["id"], "label": not r["label"]} for r in SMALL_ROWS]))
    resp = api_client(owner).post(f"/api/datasets/{dataset.pk}/labelsets/",
                                  {"file": upload, "kind": "gold", "name": "gold"}, format="multipart")
    assert resp.status_code == 201
    client.force_login(owner)
    page = client.get(f"/datasets/{dataset.pk}/gold/corrections/").content.decode()
    assert "gold v2" in page and "gold v1" in page and page.count("olivia") >= 2


def test_annotators_search_only_the_fields_they_are_shown(owner):
    rows = [{"id": f"e{i}", "question": f"Q{i}?", "choice": f"A{i}", "confidence": "confhi" if i % 2 else "conflo",
             "label": bool(i % 2)} for i in range(6)]
    ds = Dataset.objects.get(pk=_create(owner, rows))
    annotator = make_user("ann")
    Membership.objects.create(dataset=ds, user=annotator, role=Role.ANNOTATOR)
    assert api_client(annotator).get(f"/api/datasets/{ds.pk}/examples/?search=confhi").json()["count"] == 0
    assert api_client(owner).get(f"/api/datasets/{ds.pk}/examples/?search=confhi").json()["count"] == 3
    assert api_client(annotator).get(f"/api/datasets/{ds.pk}/examples/?search=q1").json()["count"] == 1


def _create(owner, rows) -> int:
    from webapp.datasets.services import create_dataset

    return create_dataset(owner=owner, filename="d.jsonl", data=jsonl(rows), task="truthfulqa").pk


# -- bounded input and work ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "data", "row"), [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "row 1"),
    ("deep.jsonl", (json.dumps({"id": 1, "question": "q", "choice": "c"}) + "\n"
                    + '{"id": 2, "question": ' + "[" * 319 + "]" * 319 + "}\n").encode(), "row 2"),
])
def test_deeply_nested_json_is_a_400_naming_the_row(client, owner, name, data, row):
    before = counts()
    resp = api_client(owner).post("/api/datasets/", {"file": SimpleUploadedFile(name, data), "task": "truthfulqa"},
                                  format="multipart")
    assert resp.status_code == 400 and row in resp.content.decode() and "nest" in resp.content.decode()
    client.force_login(owner)
    resp = client.post("/datasets/new/", {"file": SimpleUploadedFile(name, data), "task": "truthfulqa"})
    assert resp.status_code == 400 and "nest" in resp.content.decode()
    assert counts() == before


def test_deeply_nested_label_import_and_request_bodies_are_400(dataset, owner):
    api = api_client(owner)
    upload = SimpleUploadedFile("l.json", b'[{"id": "q0-0", "label": ' + b"[" * 5000 + b"]" * 5000 + b"}]")
    resp = api.post(f"/api/datasets/{dataset.pk}/labelsets/", {"file": upload, "kind": "human"}, format="multipart")
    assert resp.status_code == 400 and "nest" in resp.content.decode()
    body = f'{{"dataset": {dataset.pk}, "task": "truthfulqa", "config": {"[" * 100_000 + "]" * 100_000}}}'
    resp = api.post("/api/runs/", body, content_type="application/json")
    assert resp.status_code == 400 and "nests deeper" in resp.content.decode()


def test_a_run_is_bounded(owner, owner_api, settings):
    ds = fake_dataset(owner, n=8)
    post = lambda **body: owner_api.post("/api/runs/", {"dataset": ds.pk, "task": ds.task, "backend": FAKE, **body},  # noqa: E731
                                         format="json")
    resp = post(config={"iterations": 1_000_000_000_000})
    assert resp.status_code == 400 and "ICM_MAX_ITERATIONS" in resp.json()["config"][0]
    resp = post(seeds=list(range(11)), baselines=True)
    assert resp.status_code == 400 and "seeds" in resp.json()
    settings.ICM_MAX_RUN_EXAMPLES = 4
    assert "limit" in post().json()
    assert post(limit=4).status_code == 201
    settings.ICM_MAX_ACTIVE_RUNS = 6
    resp = post(seeds=[0, 1, 2], baselines=True, limit=4)  # 1 queued + 3 ICM + zero-shot + 3 random ICL ...
    assert resp.status_code == 400 and "ICM_MAX_ACTIVE_RUNS" in resp.json()["runs"][0]
    assert Run.objects.count() == 1  # all or nothing


def test_previews_are_bounded_per_user(owner, settings):
    data = jsonl(SMALL_ROWS)
    for _ in range(5):
        stage_upload(owner=owner, filename="s.jsonl", data=data, options={"task": "truthfulqa"})
    assert StagedUpload.objects.filter(owner=owner).count() == settings.ICM_MAX_STAGED_UPLOADS


@pytest.mark.parametrize("template", ["{question:>5000000}", "{question:%}", "{question!r}"])
def test_templates_take_plain_fields_only(owner, template):
    before = counts()
    resp = api_client(owner).post("/api/datasets/", {"file": SimpleUploadedFile("d.jsonl", jsonl(SMALL_ROWS)),
                                                     "task": "claims", "template": template}, format="multipart")
    assert resp.status_code == 400 and "takes no format" in resp.content.decode()
    assert counts() == before


# -- the rest --------------------------------------------------------------------------------------------------------

def test_usernames_are_unique_whatever_their_case(client, dataset, owner):
    make_user("rev")
    with pytest.raises(IntegrityError):
        get_user_model().objects.create_user(username="Rev", password="x-Pa55word!")


def test_an_invitation_refuses_a_name_that_differs_only_by_case_and_sign_in_ignores_case(client, dataset, owner):
    client.force_login(owner)
    text = client.post(f"/datasets/{dataset.pk}/members/invite/", {"username": "VIC", "role": "viewer"},
                       follow=True).content.decode()
    assert "already has an account" in text
    client.logout()
    assert client.post("/accounts/login/", {"username": "OLIVIA", "password": "olivia-Pa55word!"}).status_code == 302


def test_a_password_change_ends_the_api_tokens(client, owner):
    key = Token.objects.create(user=owner).key
    assert api_client(owner).get("/api/datasets/").status_code == 200
    client.force_login(owner)
    client.post("/accounts/password/", {"old_password": "olivia-Pa55word!", "new_password1": "an-Other-pa55",
                                        "new_password2": "an-Other-pa55"})
    assert not Token.objects.filter(key=key).exists()
    stale = api_client()
    stale.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert stale.get("/api/datasets/").status_code == 401
    owner.last_login = None
    owner.save(update_fields=["last_login"])  # other saves keep a new token
    assert Token.objects.filter(user=owner).count() == 0
    Token.objects.create(user=owner)
    owner.save(update_fields=["last_login"])
    assert Token.objects.filter(user=owner).count() == 1



@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/runs/abc/", "/ws/runs/1/extra/"])
def test_an_unknown_websocket_path_is_a_404_not_a_500(path, caplog):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from webapp.asgi import application

    async def attempt():
        comm = WebsocketCommunicator(application, path)
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(attempt)() == (False, 4404)
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_one_invitation_link_sets_the_password_once_under_concurrent_submissions(owner):
    import re
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.test import Client

    from webapp.datasets.memberships import invite_member

    ds = Dataset.objects.get(pk=_create(owner, SMALL_ROWS))
    _, link = invite_member(actor=owner, dataset=ds, username="nora", role="viewer")
    clients = [Client() for _ in range(4)]
    forms = [c.get(link, follow=True).redirect_chain[-1][0] for c in clients]  # each browser's own session
    assert all(re.search(r"/set-password/", f) for f in forms)

    def submit(i: int) -> int:
        try:
            return clients[i].post(forms[i], {"new_password1": f"a-Long-pa55word{i}",
                                              "new_password2": f"a-Long-pa55word{i}"}).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(submit, range(4)))
    # One sets the password; the others find the link spent (400 where they raced it past the first check).
    assert codes.count(302) == 1 and set(codes) <= {200, 302, 400}, codes
    nora = get_user_model().objects.get(username="nora")
    assert sum(nora.check_password(f"a-Long-pa55word{i}") for i in range(4)) == 1


# -- the API and its schema -----------------------------------------------------------------------------------------

def test_refusals_before_any_view_answer_in_json_under_the_api(dataset, owner):
    api = api_client(owner)
    resp = api.get(f"/api/datasets/{2**63}/")
    assert resp.status_code == 404 and resp["Content-Type"] == "application/json" and resp.json()["detail"]
    garbled = api.generic("POST", "/api/datasets/", b"--xx\r\nnot a part\r\n",
                          content_type="multipart/form-data; boundary=xx")
    assert garbled.status_code == 400 and garbled["Content-Type"] == "application/json", garbled.content[:200]


@pytest.mark.parametrize("endpoint", ["datasets/{ds}/export/", "labelsets/{ls}/export/",
                                      "datasets/{ds}/agreement/export/", "datasets/{ds}/verdicts/export/"])
def test_every_export_refuses_an_unknown_format(dataset, owner, endpoint):
    url = "/api/" + endpoint.format(ds=dataset.pk, ls=dataset.label_sets.get().pk)
    resp = api_client(owner).get(url + "?format=xlsx")
    assert resp.status_code == 400 and "format" in resp.json()


def test_the_schema_documents_the_verdicts_export_as_an_array_and_every_shared_refusal(owner):
    import yaml

    api = api_client(owner)
    as_yaml = yaml.safe_load(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi").content)
    as_json = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert as_yaml == as_json  # both renderers serve one schema
    export = as_json["paths"]["/api/datasets/{id}/verdicts/export/"]["get"]["responses"]["200"]["content"]
    assert export["application/json"]["schema"]["type"] == "array"
    for path, operations in as_json["paths"].items():
        for method, op in operations.items():
            assert {"400", "403", "404"} <= set(op["responses"]), (method, path)
    assert "429" in as_json["paths"]["/api/auth/token/"]["post"]["responses"]


def test_the_429_and_405_pages_are_pages(client, dataset, owner):
    for _ in range(10):
        client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
    resp = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
    text = resp.content.decode()
    assert resp.status_code == 429 and "</main>" in text and "try again in" in text and " 0 s" not in text
    client.force_login(owner)
    resp = client.get(f"/datasets/{dataset.pk}/delete/")
    assert resp.status_code == 405 and resp["Allow"] == "POST" and "takes POST only" in resp.content.decode()
