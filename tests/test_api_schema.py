"""The mirror API against its own OpenAPI description, with schemathesis, in-process.

The description's examples name tasks the fixture stores, so schemathesis' examples phase
checks real task bodies of fetch and list-by-condition too; the explicit tests below check
the 200 bodies of all four endpoints, and the 403 and 405 answers, against the description
as served, with schemathesis' own JSON Schema validator (jsonschema_rs).

MJ_API_FUZZ_EXAMPLES=500 runs a longer search than the default of 20 per endpoint.
"""

import os

import jsonschema_rs
import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, settings

from mjsite.wsgi import application
from tasks.api.openapi import EXAMPLE_ID, EXAMPLE_IDS
from tasks.api.openapi import schema as openapi_schema
from tasks.api.params import MAX_IDS, MAX_LIMIT
from tasks.api.tokens import create_token
from tasks.ingest.sync import ingest
from tasks.models import Source
from tests.conftest import load_fixture


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
    hook = f"https://mjsite.example{reverse('hooks:receive', args=[source.hook_token])}"
    running = {
        "id": "1700000000000001",
        "status": "IN_PROGRESS",
        "progress": "15%",
        "properties": {"notifyHook": hook},  # masked in every body
    }
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


# Real bodies against the description as served


def served_description(client, token):
    response = client.get("/mj/openapi.json", headers={"mj-api-secret": token})
    assert response.status_code == 200
    return response.json()


def validator(schema, description):
    """A validator for a schema of the description, its $refs resolved within it."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": description["components"]})


def conforming(description, path, method, response):
    """The response's JSON, after checking that its status, headers and body are declared."""
    declared = description["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method.upper()} {path}: {status} is not in the description"
    assert response["Content-Type"] == "application/json"
    for header in declared[status].get("headers", {}):
        if header == "Allow":  # the only header that must be there
            assert response.headers.get(header), f"{path}: {status} without {header}"
    body = response.json()
    schema = declared[status]["content"]["application/json"]["schema"]
    validator(schema, description).validate(body)
    return body


def test_real_task_bodies_of_all_four_endpoints_match_the_description(client, api_token):
    description = served_description(client, api_token)
    auth = {"mj-api-secret": api_token}
    hook_token = Source.objects.get(name="main").hook_token

    def check(path, method, response):
        assert response.status_code == 200, response.content
        assert hook_token not in response.content.decode()
        return conforming(description, path, method, response)

    listed = check("/mj/task/list", "get", client.get("/mj/task/list", headers=auth))
    assert len(listed) == 7  # main's 5 and other's 2
    queued = check("/mj/task/queue", "get", client.get("/mj/task/queue", headers=auth))
    assert [t["id"] for t in queued] == ["1700000000000001"]
    example = description["paths"]["/mj/task/list-by-condition"]["post"]["requestBody"]
    body = example["content"]["application/json"]["examples"]["ids"]["value"]
    by_ids = client.post(
        "/mj/task/list-by-condition", body, content_type="application/json", headers=auth
    )
    by_ids = check("/mj/task/list-by-condition", "post", by_ids)
    assert [t["id"] for t in by_ids] == EXAMPLE_IDS[:3]  # the last one is unknown
    for task_id in {str(t["id"]) for t in listed} | {EXAMPLE_ID}:
        response = client.get(f"/mj/task/{task_id}/fetch", headers=auth)
        assert str(check("/mj/task/{id}/fetch", "get", response)["id"]) == task_id


def test_the_task_schema_is_no_empty_check():
    description = openapi_schema()
    tasks = description["paths"]["/mj/task/list"]["get"]["responses"]["200"]["content"]
    check = validator(tasks["application/json"]["schema"], description)

    assert check.is_valid([{"id": "1", "status": None}])
    assert not check.is_valid([{"status": "SUCCESS"}])  # no id
    assert not check.is_valid([{"id": "1", "properties": 5}])
    assert not check.is_valid({"id": "1"})  # not an array


WRONG_METHODS = [
    ("/mj/task/list", "/mj/task/list", "get", "post"),
    ("/mj/task/queue", "/mj/task/queue", "get", "delete"),
    ("/mj/task/list-by-condition", "/mj/task/list-by-condition", "post", "get"),
    ("/mj/task/{id}/fetch", f"/mj/task/{EXAMPLE_ID}/fetch", "get", "put"),
]


@pytest.mark.parametrize("path, url, method, wrong", WRONG_METHODS)
def test_a_wrong_method_gives_the_405_the_description_declares(
    client, api_token, path, url, method, wrong
):
    description = served_description(client, api_token)

    response = getattr(client, wrong)(url, headers={"mj-api-secret": api_token})

    assert response.status_code == 405
    body = conforming(description, path, method, response)
    assert "not allowed" in body["error"]


def test_a_session_post_without_csrf_gives_the_403_the_description_declares(client, api_token):
    description = served_description(client, api_token)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.get(username="schema"))

    response = browser.post(
        "/mj/task/list-by-condition", {"ids": EXAMPLE_IDS}, content_type="application/json"
    )

    assert response.status_code == 403
    body = conforming(description, "/mj/task/list-by-condition", "post", response)
    assert "CSRF" in body["error"]


@pytest.mark.parametrize(
    "task_id, query, error",
    [
        ("1", {}, "task not found"),
        ("14001929738841621", {"source": "other"}, "task not found"),  # in main only
        ("14001929738841621", {"source": "x"}, "no source named 'x'"),
    ],
)
def test_fetch_404s_match_the_description_and_name_the_id(client, api_token, task_id, query, error):
    description = served_description(client, api_token)

    response = client.get(f"/mj/task/{task_id}/fetch", query, headers={"mj-api-secret": api_token})

    assert response.status_code == 404
    body = conforming(description, "/mj/task/{id}/fetch", "get", response)
    assert body == {"error": error, "id": task_id}


def test_a_number_too_long_gives_the_400_the_description_declares(client, api_token):
    description = served_description(client, api_token)

    response = client.post(
        "/mj/task/list-by-condition",
        '{"ids": [' + "9" * 5000 + "]}",
        content_type="application/json",
        headers={"mj-api-secret": api_token},
    )

    assert response.status_code == 400
    body = conforming(description, "/mj/task/list-by-condition", "post", response)
    assert "not acceptable JSON" in body["error"]
