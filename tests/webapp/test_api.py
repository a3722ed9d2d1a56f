"""Tokens, listing, pagination, search, schema and settings checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from .conftest import api_client

ROOT = Path(__file__).resolve().parents[2]


def test_token_login(owner):
    client = api_client()
    resp = client.post("/api/auth/token/", {"username": "olivia", "password": "olivia-Pa55word!"}, format="json")
    assert resp.status_code == 200
    token = resp.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/datasets/").status_code == 200
    # The same user gets the same token; a wrong password gets none.
    assert client.post("/api/auth/token/", {"username": "olivia", "password": "olivia-Pa55word!"}).json() == {
        "token": token}
    assert api_client().post("/api/auth/token/", {"username": "olivia", "password": "nope"}).status_code == 400
    bad = api_client()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get("/api/datasets/").status_code == 401


def test_examples_paginated_and_searchable(dataset, owner_api):
    resp = owner_api.get(f"/api/datasets/{dataset.pk}/examples/?page_size=3")
    body = resp.json()
    assert body["count"] == 8 and len(body["results"]) == 3 and body["next"]
    assert body["results"][0]["external_id"] == "q0-0" and body["results"][0]["group"] == "0"
    assert "label" not in body["results"][0]["fields"]
    found = owner_api.get(f"/api/datasets/{dataset.pk}/examples/?search=answer <b>5").json()
    assert [r["external_id"] for r in found["results"]] == ["q2-1"]
    found = owner_api.get(f"/api/datasets/{dataset.pk}/examples/?search=q3-0").json()
    assert [r["external_id"] for r in found["results"]] == ["q3-0"]


def test_labels_paginated(dataset, owner_api):
    gold = owner_api.get(f"/api/datasets/{dataset.pk}/labelsets/").json()[0]
    assert gold["kind"] == "gold" and gold["n_labels"] == 8 and gold["n_true"] == 4 and gold["n_false"] == 4
    labels = owner_api.get(f"/api/labelsets/{gold['id']}/labels/?page_size=5").json()
    assert labels["count"] == 8 and len(labels["results"]) == 5
    assert labels["results"][0] == {"example": labels["results"][0]["example"], "example_id": "q0-0",
                                    "label": True, "score": None}


def test_dataset_patch_and_delete(dataset, owner_api):
    resp = owner_api.patch(f"/api/datasets/{dataset.pk}/", {"name": "Renamed"}, format="json")
    assert resp.status_code == 200 and resp.json()["name"] == "Renamed"
    assert owner_api.patch(f"/api/datasets/{dataset.pk}/", {"name": " "}, format="json").status_code == 400
    assert owner_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    assert owner_api.get(f"/api/datasets/{dataset.pk}/").status_code == 404


def test_schema_builds_without_warnings(tmp_path, db):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))
    text = out.read_text()
    for path in ("/api/datasets/{id}/labelsets/", "/api/labelsets/{id}/export/", "/api/auth/token/"):
        assert path in text


def test_schema_and_docs_pages(owner_api):
    assert owner_api.get("/api/schema/").status_code == 200
    resp = owner_api.get("/api/docs/")
    assert resp.status_code == 200
    assert b"cdn" not in resp.content.lower()  # Swagger UI is served from our own static files


@pytest.mark.parametrize("debug", ["0"])
def test_production_settings_pass_check_deploy(debug):
    env = {**os.environ, "DEBUG": debug, "SECRET_KEY": "x" * 30 + "-production-secret-key-not-for-real-use-" + "y" * 20,
           "ALLOWED_HOSTS": "icm.example.org", "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    env.pop("HTTPS", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    proc = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
