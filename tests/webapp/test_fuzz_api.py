"""API fuzzing with schemathesis: requests generated from the OpenAPI schema (/api/schema/) against a
live server. As a member of a dataset: no 5xx, and every documented response matches its schema, for JSON
and for the browsable API's HTML. As a
user without access to anything: no 5xx and no object data (a member-only object is a 404)."""

from __future__ import annotations

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error, positive_data_acceptance, status_code_conformance

pytestmark = pytest.mark.django_db(transaction=True)


# The schema /api/schema/ serves, built without a request (Django is set up before test modules load).
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
FUZZ = settings(max_examples=8, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


def _token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@schema.parametrize()
@FUZZ
def test_members_get_no_server_error_and_schema_conformant_responses(case, live_server, dataset, owner):
    # Every check schemathesis has (the CLI's --checks all): no 5xx, every status, content type, header and
    # body the API answers with is the one its schema documents, what the schema calls invalid is refused,
    # and what it calls valid is accepted; but on the two operations whose bodies carry rules no schema
    # states (a dataset file's content; a run's task must be its dataset's, its settings a valid search),
    # where a 400 to a schema-valid request is the right answer.
    semantic = (case.method, case.path) in {("POST", "/api/datasets/"), ("POST", "/api/runs/")}
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Token {_token(owner)}"},
                           excluded_checks=[positive_data_acceptance] if semantic else [])


@schema.parametrize()
@FUZZ
def test_a_user_without_access_sees_no_data(case, live_server, dataset, stranger):
    response = case.call(base_url=live_server.url, headers={"Authorization": f"Token {_token(stranger)}"})
    assert response.status_code < 500, response.text[:500]
    # The stranger belongs to no dataset: nothing of the owner's dataset may come back.
    assert "Small" not in response.text and "Question 0?" not in response.text, response.text[:500]


@schema.parametrize()
@FUZZ
def test_the_browsable_api_answers_every_request_with_a_documented_status(case, live_server, dataset, owner):
    # The same requests asking for HTML (DRF's browsable API, what a browser gets): its pages are not the
    # schema's bodies, but no request ends in a 5xx and every status is one the schema documents.
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Token {_token(owner)}",
                                                              "Accept": "text/html"},
                           checks=[not_a_server_error, status_code_conformance])
