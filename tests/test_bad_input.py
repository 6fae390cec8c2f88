"""Bad input that once answered 500 (issue 13, items 6 and 7). Each is now a 400 with the
reason, or a value the page ignores and names; streamed exports run to their end."""

import csv
import io
import json
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tasks.ingest.hooks import MAX_HOOK_BODY
from tasks.ingest.records import raw_hash
from tasks.ingest.sync import sync_source
from tasks.models import InvalidRecord, Source, SyncRun, Task
from tests.conftest import make_task
from tests.faultserver import Reply

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, in ms
PAGES = ["tasks:list", "tasks:gallery"]
EXPORTS = ["tasks:export_csv", "tasks:export_jsonl"]
# Within hours of the ends of what a datetime holds: fine as typed, out of range in UTC.
EXTREMES = [
    ("submitted_after", "0001-01-01T00:00:00+01:00"),
    ("submitted_before", "9999-12-31T23:59:59-01:00"),
]


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


@pytest.fixture
def tasks(source):
    """Three tasks, one of them running; each with an image, so the gallery shows all."""
    return [
        make_task(
            source,
            task_id=f"17000000000000{n:02d}",
            record={
                "submitTime": T0 + n * 60_000,
                "imageUrl": f"https://cdn.example/{n}.png",
                "status": "IN_PROGRESS" if n == 3 else "SUCCESS",
            },
            image_url=f"https://cdn.example/{n}.png",
        )
        for n in (1, 2, 3)
    ]


@pytest.fixture
def client():
    user = User.objects.create_user("reader")  # no password: hashing one is slow
    c = Client()
    c.force_login(user)
    return c


def shown_ids(response):
    return sorted(t.task_id for t in response.context["tasks"])


def all_ids(tasks):
    return sorted(t.task_id for t in tasks)


def body_of(response):
    """A streamed response's whole body: reading it must not fail half-way."""
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8-sig")


def exported_ids(name, response):
    text = body_of(response)
    if name.endswith("csv"):
        return sorted(row["task_id"] for row in csv.DictReader(io.StringIO(text)))
    return sorted(json.loads(line)["task"]["id"] for line in text.splitlines())


def page_text(response):
    return response.content.decode()


# Dates beyond what a datetime holds once moved to UTC or to the site's time zone


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("param, value", EXTREMES)
def test_a_date_out_of_range_in_utc_is_ignored_and_named(client, tasks, name, param, value):
    response = client.get(reverse(name), {param: value})

    assert response.status_code == 200
    assert shown_ids(response) == all_ids(tasks)
    assert f"{param}: Enter a date between the years 1 and 9999." in page_text(response)


@pytest.mark.parametrize(
    "zone, param, value",
    [
        ("Asia/Shanghai", "submitted_after", "0001-01-01"),  # midnight there: year 0 in UTC
        ("America/New_York", "submitted_before", "9999-12-31T23:00:00"),
        ("UTC", "submitted_after", "0001-01-01T00:00:00+14:00"),
        ("Pacific/Kiritimati", "submitted_before", "9999-12-31T23:00:00Z"),  # 10000 there
    ],
)
def test_a_date_out_of_range_in_the_sites_time_zone_is_ignored_too(
    client, tasks, settings, zone, param, value
):
    settings.TIME_ZONE = zone
    response = client.get(reverse("tasks:list"), {param: value})

    assert response.status_code == 200
    assert shown_ids(response) == all_ids(tasks)
    assert f"{param}:" in page_text(response)


@pytest.mark.parametrize("name", EXPORTS)
@pytest.mark.parametrize("param, value", EXTREMES)
def test_an_export_with_such_a_date_streams_every_row_to_the_end(client, tasks, name, param, value):
    response = client.get(reverse(name), {param: value})

    assert response.status_code == 200
    assert exported_ids(name, response) == all_ids(tasks)


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("param", ["cursor", "before"])
@pytest.mark.parametrize(
    "value",
    [
        "k~0001-01-01T00:00:00+01:00~1",
        "k~9999-12-31T23:59:59-01:00~1",
        "k~2023-11-14T22:14:20+00:00~99999999999999999999",
        "n~~99999999999999999999",
        "k~2023-11-14T22:14:20+00:00\x00~1",
    ],
)
def test_a_cursor_out_of_range_starts_from_the_first_page_and_says_so(
    client, tasks, name, param, value
):
    response = client.get(reverse(name), {param: value})

    assert response.status_code == 200
    assert shown_ids(response) == all_ids(tasks)
    assert response.context["is_first_page"]
    assert f"{param}: Not a page of this list" in page_text(response)


def test_a_cursor_of_another_sort_starts_from_the_first_page_and_says_so(client, tasks):
    response = client.get(
        reverse("tasks:list"), {"sort": "-duration", "cursor": "k~2023-11-14T22:14:20~1"}
    )

    assert response.status_code == 200
    assert shown_ids(response) == all_ids(tasks)
    assert "cursor: Not a page of this list" in page_text(response)


# The list's live rows


@pytest.mark.parametrize("bad", ["²", "١٢", "99999999999999999999", "-1", "1\x00", ""])
def test_the_live_rows_ignore_an_id_that_is_no_id(client, tasks, bad):
    running = next(t for t in tasks if t.status == "IN_PROGRESS")

    response = client.get(reverse("tasks:list_live"), {"pk": [bad, str(running.pk)]})

    assert response.status_code == 200
    assert [t.pk for t in response.context["tasks"]] == [running.pk]


# NUL characters, which PostgreSQL refuses in any text parameter


@pytest.mark.parametrize("name", PAGES)
def test_a_nul_in_status_or_action_finds_what_the_proxy_sent_with_one(client, source, name):
    # The typed columns hold U+FFFD where the proxy's text had a NUL (records.clean_text).
    odd = make_task(
        source,
        task_id="1700000000000009",
        record={"status": "ODD\x00STATUS", "action": "ODD\x00ACTION"},
        image_url="https://cdn.example/9.png",
    )
    make_task(source, task_id="1700000000000008", image_url="https://cdn.example/8.png")

    for param, value in (("status", "ODD\x00STATUS"), ("action", "ODD\x00ACTION")):
        response = client.get(reverse(name), {param: value})
        assert response.status_code == 200
        assert shown_ids(response) == [odd.task_id]


@pytest.mark.parametrize("name", EXPORTS)
@pytest.mark.parametrize("param", ["status", "action"])
def test_an_export_with_a_nul_in_status_or_action_streams_to_the_end(client, tasks, name, param):
    response = client.get(reverse(name), {param: "SUC\x00CESS"})

    assert response.status_code == 200
    assert exported_ids(name, response) == []


@pytest.mark.parametrize("view", ["tasks:detail", "tasks:detail_live"])
def test_a_task_id_with_a_nul_is_not_found(client, tasks, view):
    response = client.get(reverse(view, args=["1700000000000001\x00"]))

    assert response.status_code == 404


# Records nested too deep: the list's path and the hook's alike


def nested(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


def deep_record(task_id, depth, field="buttons"):
    """A record's JSON text whose `field` is an array nested `depth` levels deep."""
    return f'{{"id":"{task_id}","status":"SUCCESS","{field}":{nested(depth)}}}'


@pytest.fixture
def deep_proxy(fault_server):
    """A stand-in proxy whose list holds a sound record and records nested 960 and 985
    deep: once, the first was taken and then failed its page, the second every pass."""
    good = {"id": "1700000000000100", "status": "SUCCESS", "submitTime": T0}
    items = [json.dumps(good), deep_record("1700000000000960", 960)]
    items.append(deep_record("1700000000000985", 985))
    fault_server.route("GET", "/mj/task/list", Reply(body=f"[{','.join(items)}]".encode()))
    fault_server.route("GET", "/mj/task/queue", Reply(body=b"[]"))
    fault_server.route("POST", "/mj/task/list-by-condition", Reply(body=b"[]"))
    return fault_server


def test_a_full_pass_keeps_records_nested_too_deep_as_invalid_and_goes_on(deep_proxy):
    source = Source.objects.create(name="deep", base_url=deep_proxy.url)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert (run.created, run.invalid) == (1, 2)
    assert list(Task.objects.values_list("task_id", flat=True)) == ["1700000000000100"]
    kept = {r.task_id: r for r in InvalidRecord.objects.filter(sync_run=run)}
    assert sorted(kept) == ["1700000000000960", "1700000000000985"]
    for task_id, row in kept.items():
        assert row.reason == "buttons: nested deeper than 64 levels"
        assert row.raw == deep_record(task_id, int(task_id[-3:]))  # kept as received
    again = sync_source(source, full=True)  # and the next pass is as sound
    assert again.outcome == SyncRun.Outcome.OK, again.error


def push(client, source, body):
    return client.post(f"/hooks/mj/{source.hook_token}/", body, content_type="application/json")


@pytest.mark.parametrize("depth", [100, 960, 985, 100_000])
def test_the_hook_keeps_a_record_nested_too_deep_as_the_list_does(client, source, depth):
    response = push(client, source, deep_record("1700000000000200", depth))

    assert response.status_code == 400
    assert response.json() == {"error": "buttons: nested deeper than 64 levels"}
    row = InvalidRecord.objects.get()
    assert (row.task_id, row.reason) == ("1700000000000200", response.json()["error"])
    assert not Task.objects.exists()
    source.refresh_from_db()
    assert (source.hooks_invalid, source.hooks_received) == (1, 0)


def test_a_hook_body_nested_100000_deep_gets_a_json_400(client, source):
    response = push(client, source, nested(100_000))

    assert response.status_code == 400
    assert "nested deeper than" in response.json()["error"]
    source.refresh_from_db()
    assert source.hooks_invalid == 1


def test_the_hook_answers_with_its_own_records_reason(client, source):
    # Another callback's invalid record, written after this one's (received later):
    # the answer must not be that one's reason.
    InvalidRecord.objects.create(
        source=source,
        received=timezone.now() + timedelta(minutes=5),
        task_id="1700000000000300",
        reason="another callback's reason",
        raw="{}",
    )

    response = push(client, source, json.dumps({"id": "1700000000000301", "submitTime": "soon"}))

    assert response.status_code == 400
    assert "submitTime" in response.json()["error"]


def test_the_page_of_a_task_stored_nested_too_deep_shows_its_text(client, source):
    # Stored before the depth limit: its page decoded, masked and indented it whole,
    # and failed on Python's recursion limit.
    text = deep_record("1700000000000960", 960)
    task = Task.objects.create(
        source=source, task_id="1700000000000960", status="SUCCESS", raw=text,
        raw_hash=raw_hash(text),
    )  # fmt: skip

    response = client.get(reverse("tasks:detail", args=[task.task_id]))

    assert response.status_code == 200
    assert "[[[[[[[[" in page_text(response)


# The hook's one body limit, over real HTTP


@pytest.mark.slow
def test_the_hook_takes_a_3_mb_body_and_refuses_one_over_5_mb_in_json(live_server):
    source = Source.objects.create(name="pushy", base_url="http://127.0.0.1:9")
    url = f"{live_server.url}/hooks/mj/{source.hook_token}/"
    record = {"id": "1700000000000400", "status": "SUCCESS", "prompt": "x" * (3 << 20)}
    headers = {"Content-Type": "application/json"}

    taken = requests.post(url, data=json.dumps(record), headers=headers, timeout=60)
    refused = requests.post(url, data=b" " * (MAX_HOOK_BODY + 1), headers=headers, timeout=60)

    assert taken.status_code == 200, taken.text[:200]
    assert taken.json()["outcome"] == "created"
    assert len(Task.objects.get(task_id="1700000000000400").prompt) == 3 << 20
    assert refused.status_code == 400
    assert refused.json() == {"error": "body larger than 5 MB"}
    source.refresh_from_db()
    assert (source.hooks_received, source.hooks_invalid) == (1, 1)


def test_a_hook_body_of_exactly_5_mb_is_read(client, source):
    record = json.dumps({"id": "1700000000000401", "status": "SUCCESS", "prompt": ""})
    body = record + " " * (MAX_HOOK_BODY - len(record))

    response = push(client, source, body)

    assert response.status_code == 200, response.content[:200]
