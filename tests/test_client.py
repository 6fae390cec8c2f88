"""The proxy client (tasks/ingest/client.py) on its own: fetch, retries, auth, messages.

Real HTTP throughout: the simulator for what real proxies send, tests/faultserver.py
for answers the simulator never gives (a 502, a 429, an oddly spaced body).
"""

import json

import pytest
import requests

from tasks.ingest.client import ProxyClient, ProxyError
from tasks.ingest.json_items import Item
from tests.faultserver import Reply

FLAVORS = ["novicezk", "trueai", "relay"]
UNKNOWN_ID = "1700000000000999"
JSON = {"Content-Type": "application/json"}


def auth_for(sim):
    """The header a source for this simulator sends (as tests/conftest.py's make_source)."""
    return {
        "novicezk": {"mj-api-secret": sim.secret},
        "trueai": {"Authorization": sim.secret},
        "relay": {"Authorization": f"Bearer {sim.secret}"},
    }[sim.flavor.name]


def client_for(url, headers=None, retries=2):
    return ProxyClient(url, headers, connect_timeout=5, read_timeout=10, retries=retries)


def raw_fetch(sim, task_id):
    """The simulator's answer to GET /fetch, bytes as sent."""
    return requests.get(f"{sim.url}/mj/task/{task_id}/fetch", headers=auth_for(sim), timeout=10)


def header(request_headers, name):
    """A request header's value, whatever the case of its name as sent."""
    found = {k.lower(): v for k, v in request_headers.items()}
    return found.get(name.lower())


# fetch: a known task


@pytest.mark.parametrize("flavor", FLAVORS)
def test_fetch_returns_the_exact_text_and_value_of_a_known_task(start_sim, flavor, clock):
    sim = start_sim(flavor, tasks=5)
    failed = sim.submit(prompt="猫猫", fail=True)
    clock.advance(900)  # long enough for it to have failed
    running = sim.submit(prompt="黄昏时的灯塔")  # Chinese: UTF-8 bytes, not \u escapes
    ids = [sim.all_records()[-1]["id"], failed, running]

    with client_for(sim.url, auth_for(sim)) as client:
        items = [client.fetch(task_id) for task_id in ids]

    for task_id, item in zip(ids, items, strict=True):
        body = raw_fetch(sim, task_id)
        assert body.status_code == 200 and body.content
        assert isinstance(item, Item)
        assert item.text.encode("utf-8") == body.content  # byte for byte
        assert item.value == json.loads(body.content) == sim.record(task_id)
        assert list(item.value) == list(json.loads(body.content))  # key order kept
        assert item.value["id"] == task_id
    assert items[1].value["status"] == "FAILURE" and items[1].value["failReason"]
    assert items[2].value["status"] not in ("SUCCESS", "FAILURE")
    assert "黄昏时的灯塔" in items[2].text


def test_fetch_keeps_the_text_as_sent_escapes_spacing_and_big_numbers(fault_server):
    # Whitespace around the object is not part of the record; everything inside is.
    text = '{ "id" : "1700000000000001", "prompt": "\\u732b\\u732b", "seed": 1208925819614629174706177, "n": 1.50 }'  # noqa: E501
    fault_server.route(
        "GET",
        "/mj/task/1700000000000001/fetch",
        Reply(body=f"\r\n {text}\n".encode(), headers=JSON),
    )

    with client_for(fault_server.url) as client:
        item = client.fetch("1700000000000001")

    assert item.text == text
    assert item.value == {
        "id": "1700000000000001",
        "prompt": "猫猫",
        "seed": 2**80 + 1,
        "n": 1.5,
    }


def test_fetch_quotes_the_id_in_the_path(fault_server):
    with client_for(fault_server.url) as client:
        assert client.fetch("a/b?c") is None  # the fault server's 404

    assert [r[1] for r in fault_server.requests] == ["/mj/task/a%2Fb%3Fc/fetch"]


# fetch: an unknown id


@pytest.mark.parametrize(
    "flavor, status, body",
    [
        ("novicezk", 200, b""),  # novicezk: the controller returns null
        ("trueai", 204, b""),
        ("relay", 400, b"task_no_found"),  # new-api's upstream_error
    ],
)
def test_fetch_of_an_unknown_id_is_none_in_each_flavor(start_sim, flavor, status, body):
    sim = start_sim(flavor, tasks=3)
    answer = raw_fetch(sim, UNKNOWN_ID)
    assert answer.status_code == status  # the path under test is the one taken
    assert body in answer.content

    with client_for(sim.url, auth_for(sim)) as client:
        assert client.fetch(UNKNOWN_ID) is None
        assert client.fetch(sim.all_records()[0]["id"]) is not None  # the same client works


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, b"", {}),
        Reply(404, b'{"status":404,"error":"Not Found"}', JSON),
        Reply(200, b"  \r\n", {}),
        Reply(200, b"null", JSON),
        Reply(400, b'{"description":"task_no_found ","type":"upstream_error","code":4}', JSON),
    ],
    ids=["404-empty", "404-json", "200-whitespace", "200-null", "400-task-no-found"],
)
def test_other_ways_of_saying_not_found_are_none(fault_server, reply):
    fault_server.route("GET", f"/mj/task/{UNKNOWN_ID}/fetch", reply)

    with client_for(fault_server.url) as client:
        assert client.fetch(UNKNOWN_ID) is None


@pytest.mark.parametrize(
    "reply, words",
    [
        (Reply(400, b'{"error":"bad id"}', JSON), ("400 from", "bad id")),
        (Reply(200, b'["not", "a task"]', JSON), ("not a task object",)),
        (Reply(200, b"<html>hello</html>", {"Content-Type": "text/html"}), ("HTML page",)),
        (Reply(200, b"{broken", JSON), ("not JSON",)),
    ],
    ids=["400-other", "an-array", "html", "broken-json"],
)
def test_a_fetch_answer_that_is_neither_a_task_nor_not_found_is_an_error(
    fault_server, reply, words
):
    fault_server.route("GET", f"/mj/task/{UNKNOWN_ID}/fetch", reply)

    with client_for(fault_server.url) as client, pytest.raises(ProxyError) as error:
        client.fetch(UNKNOWN_ID)

    for word in words:
        assert word in f"{error.value} {error.value.detail}"  # the body's words: its detail


# Retries: connection errors and 502/503/504 only


def call(client, endpoint):
    if endpoint == "fetch":
        return client.fetch(UNKNOWN_ID)
    if endpoint == "queue":
        return client.queue()
    if endpoint == "list-by-condition":
        return client.list_by_condition([UNKNOWN_ID])
    with client.list_tasks(lambda *args: None):
        return None


PATHS = {
    "fetch": ("GET", f"/mj/task/{UNKNOWN_ID}/fetch"),
    "queue": ("GET", "/mj/task/queue"),
    "list-by-condition": ("POST", "/mj/task/list-by-condition"),
    "list": ("GET", "/mj/task/list"),
}


@pytest.mark.parametrize("endpoint", ["fetch", "list-by-condition"])
@pytest.mark.parametrize(
    "status, requests_made",
    [(500, 1), (429, 1), (502, 3), (503, 3), (504, 3)],
)
def test_only_502_503_and_504_are_retried(fault_server, endpoint, status, requests_made):
    method, path = PATHS[endpoint]
    # Retry-After on every answer: a 429 (or 503) must not be retried because of it.
    fault_server.route(method, path, Reply(status, b"no", {"Retry-After": "1"}))

    with client_for(fault_server.url, retries=2) as client, pytest.raises(ProxyError) as error:
        call(client, endpoint)

    assert f"{status} from" in str(error.value)
    assert len(fault_server.requests_to(path, method)) == requests_made, fault_server.requests


@pytest.mark.parametrize("endpoint", ["fetch", "queue", "list-by-condition", "list"])
def test_a_502_once_then_an_answer_succeeds_on_the_retry(fault_server, endpoint):
    method, path = PATHS[endpoint]
    answers = [Reply(502, b"Bad Gateway", {})]
    good = b'{"id":"1700000000000999"}' if endpoint == "fetch" else b"[]"
    fault_server.route(method, path, lambda body: answers.pop() if answers else Reply(body=good))

    with client_for(fault_server.url, retries=2) as client:
        call(client, endpoint)

    assert len(fault_server.requests_to(path, method)) == 2


def test_no_retries_when_retries_is_zero(fault_server):
    method, path = PATHS["fetch"]
    fault_server.route(method, path, Reply(503, b"busy", {}))

    with client_for(fault_server.url, retries=0) as client, pytest.raises(ProxyError):
        client.fetch(UNKNOWN_ID)

    assert len(fault_server.requests_to(path)) == 1


# Auth


@pytest.mark.parametrize("endpoint", ["fetch", "queue", "list-by-condition", "list"])
def test_the_auth_header_is_sent_on_every_call(fault_server, endpoint):
    method, path = PATHS[endpoint]
    fault_server.route(method, path, Reply(body=b'{"id":"1"}' if endpoint == "fetch" else b"[]"))

    with client_for(fault_server.url, {"mj-api-secret": "s3cret"}) as client:
        call(client, endpoint)

    sent = fault_server.requests_to(path, method)
    assert len(sent) == 1
    assert header(sent[0][2], "mj-api-secret") == "s3cret"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_each_flavor_accepts_the_header_a_source_sends(start_sim, flavor):
    sim = start_sim(flavor, tasks=2)
    task_id = sim.all_records()[0]["id"]
    name, value = next(iter(auth_for(sim).items()))

    with client_for(sim.url, auth_for(sim)) as client:
        assert client.fetch(task_id).value["id"] == task_id

    method, path, headers = sim.requests_log[-1]
    assert (method, path) == ("GET", f"/mj/task/{task_id}/fetch")
    assert header(headers, name) == value


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("endpoint", ["fetch", "list-by-condition"])
def test_a_401_says_to_check_the_sources_secret(start_sim, flavor, endpoint):
    sim = start_sim(flavor, tasks=2)
    name = next(iter(auth_for(sim)))
    wrong = "Bearer sk-wrong" if flavor == "relay" else "wrong"
    assert raw_fetch(sim, UNKNOWN_ID).status_code != 401  # the right secret works

    with client_for(sim.url, {name: wrong}) as client, pytest.raises(ProxyError) as error:
        call(client, endpoint)

    message = str(error.value)
    assert message.startswith("401 from ")
    assert "check the source's secret" in message
    assert error.value.status == 401
    assert "wrong" not in message and sim.secret not in message


def test_a_401_without_any_header_says_the_same(start_sim):
    sim = start_sim("novicezk", tasks=1)

    with client_for(sim.url) as client, pytest.raises(ProxyError) as error:
        client.fetch(UNKNOWN_ID)

    assert "401 from" in str(error.value) and "check the source's secret" in str(error.value)
