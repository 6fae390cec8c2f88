"""The mirror API against its own OpenAPI description, with schemathesis, in-process.

MJ_API_FUZZ_EXAMPLES=500 runs a longer search than the default of 20 per endpoint.
"""

import os

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from mjsite.wsgi import application
from tasks.api import MAX_IDS, MAX_LIMIT
from tasks.models import Source
from tasks.openapi import schema as openapi_schema
from tasks.sync import ingest
from tasks.tokens import create_token

from .conftest import load_fixture


@pytest.fixture
def wsgi_app():
    # As Django's test client does: a request ending must not close the connection
    # that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_token(db):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    records = [
        load_fixture(name) for name in ("facts_sample_success.json", "facts_odd_values.json")
    ]
    records.append(load_fixture("facts_sample_failure.json"))
    records.append({"id": "1700000000000002", "status": "", "submitTime": 0, "finishTime": 0})
    ingest(source, records)
    ingest(other, records[:2])
    running = {"id": "1700000000000001", "status": "IN_PROGRESS", "progress": "15%"}
    ingest(source, [running], in_queue=True)
    _, token = create_token(User.objects.create_user("schema"))
    return token


# Loaded from the dict /mj/openapi.json serves (a test below checks they are the same):
# schemathesis' lazy `from_fixture` loader does not run under pytest 9.
schema = schemathesis.openapi.from_dict(openapi_schema())
schema.app = application


@schema.parametrize()
@settings(
    max_examples=int(os.getenv("MJ_API_FUZZ_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_response_matches_the_openapi_description(case, wsgi_app, api_token):
    case.call_and_validate(headers={"mj-api-secret": api_token})


def test_the_description_states_the_limits_the_code_enforces():
    paths = openapi_schema()["paths"]
    limit = next(p for p in paths["/mj/task/list"]["get"]["parameters"] if p["name"] == "limit")
    body = paths["/mj/task/list-by-condition"]["post"]["requestBody"]
    ids = body["content"]["application/json"]["schema"]["properties"]["ids"]

    assert limit["schema"]["maximum"] == MAX_LIMIT
    assert ids["maxItems"] == MAX_IDS


def test_the_description_is_served_to_an_authenticated_client_only(client, api_token):
    assert client.get("/mj/openapi.json").status_code == 401

    response = client.get("/mj/openapi.json", headers={"Authorization": f"Bearer {api_token}"})

    assert response.status_code == 200
    assert response.json() == openapi_schema()
    assert set(response.json()["paths"]) == {
        "/mj/task/list",
        "/mj/task/queue",
        "/mj/task/list-by-condition",
        "/mj/task/{id}/fetch",
    }
