"""Who sees what: non-members get 404 everywhere, anonymous requests 401 (API) or the login page,
viewers read but never write, only owners manage members."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, get_resolver, reverse

from webapp.datasets.models import Membership, Role

from .conftest import api_client, counts, make_user


def _api_calls(ds, ls, member_id, run, check, example):
    upload = SimpleUploadedFile("l.csv", b"id,label\nq0-0,1\n")
    return {
        "api-agreement": [("get", f"/api/datasets/{ds}/agreement/?labelsets={ls}", None)],
        "api-dataset-methods": [("get", f"/api/datasets/{ds}/methods/", None)],
        "api-agreement-export": [("get", f"/api/datasets/{ds}/agreement/export/?labelsets={ls}&format=csv", None)],
        "api-verdicts": [("get", f"/api/datasets/{ds}/verdicts/", None),
                         ("post", f"/api/datasets/{ds}/verdicts/", {"example": example, "verdict": "ambiguous"})],
        "api-verdicts-undo": [("post", f"/api/datasets/{ds}/verdicts/undo/", {})],
        "api-verdicts-export": [("get", f"/api/datasets/{ds}/verdicts/export/?format=csv", None)],
        "api-gold-corrections": [("get", f"/api/datasets/{ds}/gold-corrections/", None)],
        "api-annotations": [("get", f"/api/datasets/{ds}/annotations/", None),
                            ("post", f"/api/datasets/{ds}/annotations/", {"example": example, "label": "true"})],
        "api-annotations-undo": [("post", f"/api/datasets/{ds}/annotations/undo/", {})],
        "api-spotchecks": [("post", f"/api/datasets/{ds}/spotchecks/", {"gold": ls, "size": 2})],
        "api-spotcheck": [("get", f"/api/spotchecks/{check}/", None)],
        "api-spotcheck-answers": [("post", f"/api/spotchecks/{check}/answers/", {"example": example, "label": "true"})],
        "api-dataset": [("get", f"/api/datasets/{ds}/", None), ("patch", f"/api/datasets/{ds}/", {"name": "x"}),
                        ("delete", f"/api/datasets/{ds}/", None)],
        "api-dataset-examples": [("get", f"/api/datasets/{ds}/examples/", None)],
        "api-dataset-labelsets": [("get", f"/api/datasets/{ds}/labelsets/", None),
                                  ("post", f"/api/datasets/{ds}/labelsets/", {"file": upload, "kind": "human"})],
        "api-dataset-export": [("get", f"/api/datasets/{ds}/export/?format=csv", None)],
        "api-dataset-label-studio": [("post", f"/api/datasets/{ds}/label-studio/", {"file": SimpleUploadedFile(
            "ls.json", b'[{"data": {"id": "q0-0"}, "annotations": [{"result": [{"from_name": "label", '
                       b'"type": "choices", "value": {"choices": ["True"]}}]}]}]')})],
        "api-dataset-members": [("get", f"/api/datasets/{ds}/members/", None),
                                ("post", f"/api/datasets/{ds}/members/", {"username": "sam", "role": "owner"})],
        "api-dataset-member": [("patch", f"/api/datasets/{ds}/members/{member_id}/", {"role": "owner"}),
                               ("delete", f"/api/datasets/{ds}/members/{member_id}/", None)],
        "api-labelset": [("get", f"/api/labelsets/{ls}/", None), ("delete", f"/api/labelsets/{ls}/", None)],
        "api-labelset-labels": [("get", f"/api/labelsets/{ls}/labels/", None)],
        "api-labelset-agreement": [("get", f"/api/labelsets/{ls}/agreement/?other={ls}", None)],
        "api-labelset-export": [("get", f"/api/labelsets/{ls}/export/?format=jsonl", None)],
        "api-dataset-invitations": [("get", f"/api/datasets/{ds}/invitations/", None),
                                    ("post", f"/api/datasets/{ds}/invitations/", {"role": "viewer"})],
        # Owners only: the lookup comes after the role check, so any id shows the refusal.
        "api-dataset-invitation": [("delete", f"/api/datasets/{ds}/invitations/1/", None)],
        "api-run": [("get", f"/api/runs/{run}/", None)],
        "api-run-cancel": [("post", f"/api/runs/{run}/cancel/", {})],
        "api-run-resume": [("post", f"/api/runs/{run}/resume/", {})],
    }


# Endpoints that hold no dataset's data.
OPEN_API = {"api-root", "api-token", "api-datasets", "api-runs", "api-schema", "api-docs", "api-redoc",
            "api-invitation-accept"}  # the invitation's key is the credential


def _api_names() -> set[str]:
    resolver = get_resolver()
    names = set()
    for pattern in resolver.url_patterns:
        for sub in getattr(pattern, "url_patterns", []):
            if isinstance(sub, URLPattern) and str(pattern.pattern) == "api/":
                names.add(sub.name)
    return names


@pytest.fixture
def world(dataset, viewer, owner):
    from webapp.review.services import create_spot_check
    from webapp.runs.services import create_run

    gold = dataset.label_sets.get(kind="gold")
    run = create_run(user=owner, dataset=dataset, config={"iterations": 1})
    check = create_spot_check(user=owner, dataset=dataset, gold=gold, size=4)
    example = check.items.first().example_id
    return dataset.pk, gold.pk, viewer.pk, run.pk, check.pk, example


def test_every_api_endpoint_has_a_permission_case(world):
    # A new endpoint without a case here fails this test.
    assert _api_names() - OPEN_API == set(_api_calls(*world))


def _call(client, method, url, data):
    kwargs = {"format": "multipart"} if method == "post" else {"format": "json"} if data else {}
    return getattr(client, method)(url, data, **kwargs) if data is not None else getattr(client, method)(url)


def test_stranger_gets_404_on_every_dataset_endpoint(world, stranger):
    client = api_client(stranger)
    before = counts()
    for name, calls in _api_calls(*world).items():
        for method, url, data in calls:
            resp = _call(client, method, url, data)
            assert resp.status_code == 404, (name, method, url, resp.status_code)
    assert counts() == before
    assert client.get("/api/datasets/").json()["count"] == 0


def test_anonymous_gets_401_on_every_endpoint(world):
    client = api_client()
    before = counts()
    for name, calls in _api_calls(*world).items():
        for method, url, data in calls:
            resp = _call(client, method, url, data)
            assert resp.status_code == 401, (name, method, url, resp.status_code)
    assert client.get("/api/datasets/").status_code == 401
    assert counts() == before


VIEWER_WRITES = {("api-dataset", "patch"), ("api-dataset", "delete"), ("api-dataset-labelsets", "post"),
                 ("api-dataset-label-studio", "post"),
                 ("api-dataset-members", "post"), ("api-dataset-member", "patch"), ("api-dataset-member", "delete"),
                 ("api-labelset", "delete"), ("api-run-cancel", "post"), ("api-run-resume", "post"),
                 ("api-verdicts", "post"), ("api-verdicts-undo", "post"), ("api-annotations", "get"),
                 ("api-annotations", "post"), ("api-annotations-undo", "post"), ("api-spotchecks", "post"),
                 ("api-spotcheck-answers", "post"), ("api-dataset-invitations", "get"),
                 ("api-dataset-invitations", "post"), ("api-dataset-invitation", "delete")}


def test_viewer_reads_but_cannot_write(world, viewer):
    client = api_client(viewer)
    before = counts()
    for name, calls in _api_calls(*world).items():
        for method, url, data in calls:
            resp = _call(client, method, url, data)
            expected = 403 if (name, method) in VIEWER_WRITES else 200
            assert resp.status_code == expected, (name, method, url, resp.status_code, resp.content[:200])
    assert counts() == before


def test_the_browsable_api_renders_every_endpoint(world, owner):
    # In a browser the API answers with HTML pages whose forms are built from each endpoint's serializers.
    client = api_client(owner)
    client.raise_request_exception = False  # a failure is a 500 to collect, not an exception
    pages = [(name, url) for name, calls in _api_calls(*world).items() for method, url, _ in calls if method == "get"]
    for name in OPEN_API - {"api-token", "api-schema", "api-invitation-accept"}:  # POST-only with no GET page
        pages.append((name, reverse(name)))
    failed = []
    for name, url in pages:
        resp = client.get(url, HTTP_ACCEPT="text/html")
        if resp.status_code not in (200, 400):
            failed.append((name, url, resp.status_code))
    assert not failed


def test_only_owners_manage_members(dataset, owner, viewer):
    reviewer = make_user("rita")
    Membership.objects.create(dataset=dataset, user=reviewer, role=Role.REVIEWER)
    newcomer = make_user("nina")
    resp = api_client(reviewer).post(f"/api/datasets/{dataset.pk}/members/", {"username": "nina", "role": "viewer"})
    assert resp.status_code == 403
    client = api_client(owner)
    resp = client.post(f"/api/datasets/{dataset.pk}/members/", {"username": "nina", "role": "annotator"})
    assert resp.status_code == 201 and resp.json()["role"] == "annotator"
    assert api_client(newcomer).get(f"/api/datasets/{dataset.pk}/").json()["my_role"] == "annotator"
    # A member twice, an unknown user and the last owner stepping down are refused.
    members = f"/api/datasets/{dataset.pk}/members/"
    assert client.post(members, {"username": "nina", "role": "viewer"}).status_code == 400
    assert client.post(members, {"username": "ghost", "role": "viewer"}).status_code == 400
    resp = client.patch(f"/api/datasets/{dataset.pk}/members/{owner.pk}/", {"role": "viewer"}, format="json")
    assert resp.status_code == 400 and "owner" in str(resp.json())
    assert client.delete(f"/api/datasets/{dataset.pk}/members/{owner.pk}/").status_code == 400
    # With a second owner, the first may step down.
    client.patch(f"/api/datasets/{dataset.pk}/members/{reviewer.pk}/", {"role": "owner"}, format="json")
    resp = client.patch(f"/api/datasets/{dataset.pk}/members/{owner.pk}/", {"role": "viewer"}, format="json")
    assert resp.status_code == 200
    assert client.delete(f"/api/datasets/{dataset.pk}/members/{newcomer.pk}/").status_code == 403  # now a viewer


def test_reviewer_imports_but_only_owner_deletes_gold(dataset):
    reviewer = make_user("rita")
    Membership.objects.create(dataset=dataset, user=reviewer, role=Role.REVIEWER)
    client = api_client(reviewer)
    resp = client.post(f"/api/datasets/{dataset.pk}/labelsets/",
                       {"file": SimpleUploadedFile("l.csv", b"id,label\nq0-0,1\n"), "kind": "human"},
                       format="multipart")
    assert resp.status_code == 201
    human = resp.json()["id"]
    gold = dataset.label_sets.get(kind="gold").pk
    assert client.delete(f"/api/labelsets/{gold}/").status_code == 403
    assert client.delete(f"/api/labelsets/{human}/").status_code == 204
    assert client.delete(f"/api/datasets/{dataset.pk}/").status_code == 403


def _pages(ds, ls, member_id, run, check, example):
    return [
        ("get", f"/datasets/{ds}/"),
        ("get", f"/datasets/{ds}/examples/"),
        ("get", f"/datasets/{ds}/settings/"),
        ("get", f"/datasets/{ds}/labelsets/"),
        ("get", f"/datasets/{ds}/download/?format=csv"),
        ("post", f"/datasets/{ds}/labelsets/import/"),
        ("post", f"/datasets/{ds}/labelsets/label-studio/"),
        ("post", f"/datasets/{ds}/delete/"),
        ("post", f"/datasets/{ds}/members/"),
        ("post", f"/datasets/{ds}/members/invite/"),
        ("post", f"/datasets/{ds}/guidelines/"),
        ("post", f"/datasets/{ds}/members/{member_id}/"),
        ("get", f"/labelsets/{ls}/"),
        ("get", f"/labelsets/{ls}/download/?format=jsonl"),
        ("post", f"/labelsets/{ls}/delete/"),
        ("get", f"/datasets/{ds}/runs/"),
        ("get", f"/datasets/{ds}/runs/new/"),
        ("get", f"/datasets/{ds}/runs/panel/"),
        ("get", f"/datasets/{ds}/runs/estimate/"),
        ("get", f"/runs/{run}/"),
        ("post", f"/runs/{run}/cancel/"),
        ("post", f"/runs/{run}/resume/"),
        ("get", f"/datasets/{ds}/review/"),
        ("post", f"/datasets/{ds}/review/verdict/"),
        ("post", f"/datasets/{ds}/review/undo/"),
        ("post", f"/datasets/{ds}/review/adjudicate/"),
        ("get", f"/datasets/{ds}/review/verdicts/download/"),
        ("get", f"/datasets/{ds}/gold/corrections/"),
        ("get", f"/datasets/{ds}/agreement/"),
        ("get", f"/datasets/{ds}/agreement/download/"),
        ("get", f"/datasets/{ds}/spotchecks/"),
        ("post", f"/datasets/{ds}/spotchecks/new/"),
        ("get", f"/spotchecks/{check}/"),
        ("post", f"/spotchecks/{check}/answer/"),
        ("get", f"/spotchecks/{check}/result/"),
        ("post", f"/spotchecks/{check}/correct/"),
        ("get", f"/datasets/{ds}/annotate/"),
        ("post", f"/datasets/{ds}/annotate/label/"),
        ("post", f"/datasets/{ds}/annotate/undo/"),
    ]


def test_every_dataset_page_has_a_permission_case(world):
    resolver = get_resolver()
    page_names = {
        f"{pattern.namespace}:{sub.name}" for pattern in resolver.url_patterns
        for sub in getattr(pattern, "url_patterns", [])
        if getattr(pattern, "namespace", None) in ("datasets", "runs", "review")
    }
    covered = {resolver.resolve(url.split("?")[0]).view_name for _, url in _pages(*world)}
    assert page_names - {"datasets:list", "datasets:new", "datasets:confirm"} == covered


def test_pages_hide_datasets_from_strangers_and_anonymous(client, world, stranger):
    before = counts()
    for method, url in _pages(*world):
        resp = getattr(client, method)(url)
        assert resp.status_code == 302 and resp.url.startswith("/accounts/login/"), (url, resp.status_code)
    client.force_login(stranger)
    for method, url in _pages(*world):
        assert getattr(client, method)(url).status_code == 404, url
    assert "Small" not in client.get("/datasets/").content.decode()
    assert counts() == before


def test_viewer_pages_refuse_writes(client, world, viewer):
    client.force_login(viewer)
    before = counts()
    ds, ls, *_ = world
    assert client.get(f"/datasets/{ds}/").status_code == 200
    assert client.post(f"/datasets/{ds}/delete/").status_code == 403
    assert client.post(f"/labelsets/{ls}/delete/").status_code == 403
    client.post(f"/datasets/{ds}/members/", {"username": "vic", "role": "owner"})
    assert counts() == before
    assert Membership.objects.get(user=viewer).role == Role.VIEWER
