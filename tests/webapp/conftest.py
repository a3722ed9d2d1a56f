from __future__ import annotations

import json
import os

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import tests.fakes  # registers the fake backends the run tests name; its CallGate holds their calls
from webapp.datasets.models import Dataset, Example, Label, LabelSet, Membership, Role
from webapp.datasets.services import create_dataset

# Tests import the ASGI app; its embedded worker must not pick up runs at import time.
os.environ.setdefault("ICM_START_WORKER", "0")


def jsonl(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


SMALL_ROWS = [
    {"id": f"q{i // 2}-{i % 2}", "question": f"Question {i // 2}?", "choice": f"Answer <b>{i}</b>",
     "label": i % 2 == 0, "consistency_id": i // 2}
    for i in range(8)
]


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password=f"{username}-Pa55word!")


def counts() -> tuple[int, int, int, int, int]:
    """Everything an import could write, to check that a rejected one wrote nothing."""
    return (Dataset.objects.count(), Example.objects.count(), LabelSet.objects.count(), Label.objects.count(),
            Membership.objects.count())


@pytest.fixture(scope="session", autouse=True)
def _plain_http_server():
    """The live server and the test client speak plain HTTP: no HTTPS redirect, no secure-only cookies.
    Session-scoped so it applies before the live server builds its middleware."""
    from django.conf import settings

    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_HSTS_SECONDS = 0


@pytest.fixture(autouse=True)
def _test_settings(settings, request):
    # The test client speaks plain HTTP; production settings would redirect it to HTTPS.
    settings.SECURE_SSL_REDIRECT = False
    # A password hash costs about a third of a second on a slow core, and most tests make two users (Django's
    # testing docs suggest a fast hasher). Not where a worker or a server in another process, with the
    # product's settings, checks the password.
    if request.node.get_closest_marker("celery") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Runs execute only where a test says so (never a surprise model load in a thread).
    settings.ICM_RUN_DISPATCH = "none"
    # Sign-in attempts are counted in the cache: every test starts with none.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def owner(db):
    return make_user("olivia")


@pytest.fixture
def stranger(db):
    return make_user("sam")


@pytest.fixture
def viewer(db):
    return make_user("vic")


@pytest.fixture
def dataset(owner, viewer):
    ds = create_dataset(owner=owner, filename="small.jsonl", data=jsonl(SMALL_ROWS), task="truthfulqa", name="Small")
    Membership.objects.create(dataset=ds, user=viewer, role=Role.VIEWER)
    return ds


def api_client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def owner_api(owner):
    return api_client(owner)


@pytest.fixture
def call_gate():
    """A gate on this process's runs: a run made with its options makes each model call only when let."""
    gate = tests.fakes.LocalCallGate()
    yield gate
    gate.close()


@pytest.fixture
def redis_call_gate():
    """A CallGate on the suite's Redis, for runs in Celery workers: each model call only when let."""
    from .private_redis import REDIS_URL, redis_ok

    if not redis_ok():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"Redis is not reachable at {REDIS_URL}")
    gate = tests.fakes.CallGate(REDIS_URL)
    yield gate
    gate.close()
