"""The mirror API (/mj/task/...): the proxy's endpoints served from mjsite's history."""

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tasks.api.openapi import schema as openapi_schema
from tasks.api.tokens import create_token
from tasks.ingest.sync import ingest, sync_source
from tasks.models import ApiToken, Source, SourceKind, SyncRun, Task
from tasks.redaction import Masker
from tests.conftest import FIXTURES, make_task

pytestmark = pytest.mark.django_db

LIST = "/mj/task/list"
QUEUE = "/mj/task/queue"
BY_IDS = "/mj/task/list-by-condition"


def fetch_url(task_id):
    return f"/mj/task/{task_id}/fetch"


def ordered(text):
    """Parsed JSON where objects are lists of (key, value): equal only in the same key order."""
    return json.loads(text, object_pairs_hook=list)


@pytest.fixture
def user():
    return User.objects.create_user("alice")  # no password: hashing one is slow


@pytest.fixture
def token(user):
    _, clear = create_token(user)
    return clear


@pytest.fixture
def auth(token):
    return {"mj-api-secret": token}


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


@pytest.fixture
def api(client, auth):
    """GET/POST with the token header."""

    class Api:
        def get(self, url, **params):
            return client.get(url, params, headers=auth)

        def post(self, url, body, **kwargs):
            data = body if isinstance(body, str | bytes) else json.dumps(body)
            return client.post(url, data, content_type="application/json", headers=auth, **kwargs)

    return Api()


def task(source, task_id, in_queue=False, **record):
    """A stored task whose raw record carries these fields (so columns and raw agree)."""
    return make_task(source, task_id=task_id, in_queue=in_queue, record=record)


def ids_of(response):
    assert response.status_code == 200, response.content
    return [t["id"] for t in response.json()]


def next_url(response):
    link = response.headers.get("Link")
    if link is None:
        assert "X-Next-Cursor" not in response.headers
        return None
    url, rel = link.split(";")
    assert rel.strip() == 'rel="next"'
    return url.strip()[1:-1]


def page_through(client, auth, url, between_pages=None):
    seen, pages = [], 0
    while url:
        response = client.get(url, headers=auth)
        page = ids_of(response)
        seen += page
        pages += 1
        url = next_url(response)
        if url and between_pages:
            between_pages(pages)
    return seen, pages


def sim_headers(sim):
    return {
        "novicezk": {"mj-api-secret": sim.secret},
        "trueai": {"Authorization": sim.secret},
        "relay": {"Authorization": f"Bearer {sim.secret}"},
    }[sim.flavor.name]


# Lossless: the mirror answers what the proxy answers


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_fetch_from_the_mirror_equals_fetch_from_the_proxy_for_every_synced_task(
    start_sim, make_source, api, flavor
):
    sim = start_sim(flavor, tasks=150)
    source = make_source(sim)
    run = sync_source(source, full=True)
    assert run.outcome == SyncRun.Outcome.OK, run.error

    task_ids = list(Task.objects.filter(source=source).values_list("task_id", flat=True))
    assert len(task_ids) >= 100
    with requests.Session() as upstream:
        for task_id in task_ids:
            theirs = upstream.get(
                f"{sim.url}/mj/task/{task_id}/fetch", headers=sim_headers(sim), timeout=10
            )
            ours = api.get(fetch_url(task_id))
            assert ours.status_code == 200
            assert ours["Content-Type"] == "application/json"
            assert ordered(ours.content) == ordered(theirs.content), task_id


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_list_by_condition_of_every_id_equals_the_proxys_answer(
    start_sim, make_source, api, flavor
):
    sim = start_sim(flavor, tasks=150)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK

    task_ids = list(Task.objects.filter(source=source).values_list("task_id", flat=True))
    theirs = requests.post(
        f"{sim.url}/mj/task/list-by-condition",
        json={"ids": task_ids},
        headers=sim_headers(sim),
        timeout=10,
    )
    # The proxy answers in its own order; asked in that order, the mirror must match it.
    their_order = [t["id"] for t in theirs.json()]
    assert sorted(their_order) == sorted(task_ids)
    ours = api.post(BY_IDS, {"ids": their_order})
    assert ours.status_code == 200
    assert ordered(ours.content) == ordered(theirs.content)


def test_a_relays_tasks_are_served_exactly_as_the_relay_sends_them(start_sim, make_source, api):
    sim = start_sim("relay", tasks=40)
    source = make_source(sim, kind=SourceKind.RELAY)
    # A relay has no list: the mirror learns its ids elsewhere (a hook, an earlier proxy).
    ingest(source, sim.all_records())
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK

    task_ids = [r["id"] for r in sim.all_records()]
    with requests.Session() as upstream:
        for task_id in task_ids:
            theirs = upstream.get(
                f"{sim.url}/mj/task/{task_id}/fetch", headers=sim_headers(sim), timeout=10
            )
            assert ordered(api.get(fetch_url(task_id)).content) == ordered(theirs.content)
        theirs = upstream.post(
            f"{sim.url}/mj/task/list-by-condition",
            json={"ids": task_ids},
            headers=sim_headers(sim),
            timeout=10,
        )
    their_order = [t["id"] for t in theirs.json()]
    assert ordered(api.post(BY_IDS, {"ids": their_order}).content) == ordered(theirs.content)


@pytest.mark.parametrize(
    "fixture",
    ["facts_sample_success.json", "facts_sample_failure.json", "facts_odd_values.json"],
)
def test_sample_records_come_back_key_for_key_and_value_for_value(
    start_sim, make_source, api, fixture
):
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    record = json.loads(text)
    sim = start_sim("novicezk")
    sim.put(record)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK

    ours = api.get(fetch_url(record["id"]))
    theirs = requests.get(
        f"{sim.url}/mj/task/{record['id']}/fetch", headers=sim_headers(sim), timeout=10
    )
    assert ordered(ours.content) == ordered(theirs.content) == ordered(text)
    assert ordered(api.post(BY_IDS, {"ids": [record["id"]]}).content) == [ordered(text)]
    assert ordered(api.get(LIST).content) == [ordered(text)]


def test_bodies_are_the_stored_text_byte_for_byte(source, api):
    task = make_task(source, record={"prompt": "猫猫", "extra": {"z": 1, "a": [1.5, None]}})

    assert api.get(fetch_url(task.task_id)).content.decode() == task.raw
    assert api.get(LIST).content.decode() == f"[{task.raw}]"
    assert api.post(BY_IDS, {"ids": [task.task_id]}).content.decode() == f"[{task.raw}]"


@pytest.mark.parametrize("flavor, tasks", [("novicezk", 150), ("trueai", 150)])
def test_the_list_without_parameters_equals_the_proxys_list_after_a_full_sync(
    start_sim, make_source, api, flavor, tasks
):
    sim = start_sim(flavor, tasks=tasks)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    theirs = requests.get(f"{sim.url}/mj/task/list", headers=sim_headers(sim), timeout=10)
    assert theirs.status_code == 200

    ours = api.get(LIST)

    assert ours.status_code == 200
    assert "X-Next-Cursor" not in ours.headers
    # trueai lists only its newest 100, and the mirror then holds just those
    assert len(theirs.json()) == (100 if flavor == "trueai" else tasks)
    assert Task.objects.count() == len(theirs.json())
    assert ordered(ours.content) == ordered(theirs.content)


# Secrets: each source's secret and hook token are masked; every other byte stays


MASK = "•••"


def hook_url(source):
    return f"https://mjsite.example{reverse('hooks:receive', args=[source.hook_token])}"


def test_the_hook_token_a_proxy_echoes_is_masked_and_the_rest_is_as_the_proxy_sent_it(
    start_sim, api
):
    source = Source.objects.create(name="novicezk", base_url="http://127.0.0.1:9")
    sim = start_sim("novicezk", tasks=60, notify_hook=hook_url(source))
    Source.objects.filter(pk=source.pk).update(base_url=sim.url, secret=sim.secret)
    source.refresh_from_db()
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    token = source.hook_token

    with requests.Session() as upstream:

        def proxy(path, **kwargs):
            method = upstream.post if "json" in kwargs else upstream.get
            url = f"{sim.url}{path}"
            return method(url, headers=sim_headers(sim), timeout=10, **kwargs).content.decode()

        listed = proxy(LIST)
        their_order = [t["id"] for t in json.loads(listed)]
        assert listed.count(token) == len(their_order) == 60  # properties.notifyHook of each
        pairs = [
            (api.get(LIST), listed),
            (api.get(QUEUE), proxy(QUEUE)),
            (api.post(BY_IDS, {"ids": their_order}), proxy(BY_IDS, json={"ids": their_order})),
        ]
        pairs += [(api.get(fetch_url(i)), proxy(fetch_url(i))) for i in their_order[:20]]

    assert len(json.loads(pairs[1][1])) > 0, "the queue holds tasks"
    for ours, theirs in pairs:
        assert ours.status_code == 200
        text = ours.content.decode()
        assert token not in text
        assert f"/hooks/mj/{MASK}/" in text
        assert ordered(text) == ordered(theirs.replace(token, MASK))


def test_only_records_that_hold_a_secret_change_and_only_where_it_is(api, source):
    source.secret = "sk-source-secret-42"
    source.save()
    echoed = make_task(
        source,
        task_id="1700000000000002",
        record={
            "notifyHook": hook_url(source),
            "properties": {"notifyHook": hook_url(source), "note": "sent sk-source-secret-42"},
            "submitTime": 1700000000002,
        },
    )
    plain = make_task(source, record={"prompt": "猫猫 \\n", "extra": {"z": 1, "a": [1.5, None]}})
    masked = echoed.raw.replace(source.hook_token, MASK).replace(source.secret, MASK)
    assert masked != echoed.raw

    assert api.get(LIST).content.decode() == f"[{masked},{plain.raw}]"
    assert api.get(fetch_url(echoed.task_id)).content.decode() == masked
    assert api.get(fetch_url(plain.task_id)).content.decode() == plain.raw
    by_ids = api.post(BY_IDS, {"ids": [plain.task_id, echoed.task_id]}).content.decode()
    assert by_ids == f"[{plain.raw},{masked}]"


TOKEN = "Xq3_9-abcDEF"


@pytest.mark.parametrize(
    "secrets, text, expected",
    [
        # the hook URL as Jackson writes it, and with PHP's escaped slashes
        (
            [TOKEN],
            '{"notifyHook":"https://x/hooks/mj/Xq3_9-abcDEF/","n":1}',
            '{"notifyHook":"https://x/hooks/mj/•••/","n":1}',
        ),
        (
            [TOKEN],
            '{"u":"https:\\/\\/x\\/hooks\\/mj\\/Xq3_9-abcDEF\\/"}',
            '{"u":"https:\\/\\/x\\/hooks\\/mj\\/•••\\/"}',
        ),
        # in a key too; twice in one string
        ([TOKEN], '{"Xq3_9-abcDEF":"Xq3_9-abcDEF Xq3_9-abcDEF"}', '{"•••":"••• •••"}'),
        # a secret of digits is masked in strings, never inside a number
        (
            ["123456"],
            '{"id":"x123456y","submitTime":1700123456000}',
            '{"id":"x•••y","submitTime":1700123456000}',
        ),
        # text that only looks like the secret because of an escape is left alone
        (["nabcdef"], '{"p":"line\\nabcdef, nabcdef"}', '{"p":"line\\nabcdef, •••"}'),
        (["00e9abc"], '{"p":"caf\\u00e9abc"}', '{"p":"caf\\u00e9abc"}'),
        # a secret with characters that encoders escape, escaped and not
        (['pa"ss/wörd+1'], '{"s":"pa\\"ss\\/w\\u00f6rd\\u002b1"}', '{"s":"•••"}'),
        (['pa"ss/wörd+1'], '{"s":"x pa\\"ss/wörd+1"}', '{"s":"x •••"}'),
        # a secret that spans two strings is no secret there: the array keeps its shape
        (['a","b'], '["a","b"]', '["a","b"]'),
        # a lone surrogate next to a secret stays an escape (UTF-8 cannot hold it)
        (["sec ret!"], '{"p":"\\ud800 sec ret!"}', '{"p":"\\ud800 \\u2022\\u2022\\u2022"}'),
        # a relay's secret beside a hook token; a secret inside another is masked whole
        (
            ["Bearer sk-s3cret", TOKEN],
            '{"h":"/hooks/mj/Xq3_9-abcDEF/","a":"Bearer sk-s3cret","n":"line\\n"}',
            '{"h":"/hooks/mj/•••/","a":"•••","n":"line\\n"}',
        ),
        (["abcdef", "xxabcdefyy"], '["xxabcdefyy","abcdef"]', '["•••","•••"]'),
        # a secret whose every character may be escaped
        (
            ["密码密码密码"],
            '{"p":"密码密码密码","q":"\\u5bc6\\u7801\\u5bc6\\u7801\\u5bc6\\u7801"}',
            '{"p":"•••","q":"•••"}',
        ),
    ],
)
def test_secrets_are_masked_inside_json_strings_only(secrets, text, expected):
    result = Masker(secrets).json_text(text)

    assert result == expected
    json.loads(result)


def test_a_text_without_secrets_is_returned_as_it_is():
    text = '{"id":"1","p":"\\u00e9 line\\n","n":-1.5e3}'
    masker = Masker([TOKEN, "sk-secret+/x"])

    assert masker.json_text(text) is text
    assert masker.json_array([text, text]) == f"[{text},{text}]"


# /mj/task/list: order, paging and filters


def test_the_list_is_newest_first_then_by_id_with_undated_tasks_last(source, api):
    task(source, "1", submitTime=1_700_000_000_000)
    task(source, "2", submitTime=1_700_000_003_000)
    task(source, "3", submitTime=None)
    task(source, "4", submitTime=1_700_000_003_000)
    task(source, "5", submitTime=1_700_000_001_000)
    task(source, "6", submitTime=None)

    assert ids_of(api.get(LIST)) == ["4", "2", "5", "1", "6", "3"]


def test_paging_with_the_cursor_visits_every_task_exactly_once(client, auth, source):
    base = 1_700_000_000_000
    for n in range(40):
        # ties in submit time (n // 3), and a few without one
        submit = None if n % 9 == 0 else base + (n // 3) * 1000
        task(source, f"17000000000{n:05d}", submitTime=submit)
    everything = ids_of(client.get(LIST, headers=auth))

    seen, pages = page_through(client, auth, f"{LIST}?limit=7")

    assert seen == everything
    assert len(set(seen)) == 40
    assert pages == 6


def test_paging_visits_every_task_once_when_all_share_one_submit_time(client, auth, source):
    for n in range(10):
        task(source, f"{n:016d}", submitTime=1_700_000_000_000)

    seen, _ = page_through(client, auth, f"{LIST}?limit=3")

    assert sorted(seen) == [f"{n:016d}" for n in range(10)]
    assert len(seen) == 10


def test_paging_visits_every_task_once_while_new_tasks_arrive_between_pages(client, auth, source):
    base = 1_700_000_000_000

    def record(n, submit, status="SUCCESS"):
        return {"id": f"1{n:015d}", "action": "IMAGINE", "status": status, "submitTime": submit}

    ingest(source, [record(n, base + (n // 2) * 1000) for n in range(30)])
    ingest(source, [record(100 + n, None) for n in range(4)])
    before = set(Task.objects.values_list("task_id", flat=True))
    arrivals = iter(range(200, 300))

    def sync_meanwhile(page):
        # new tasks: newer than all, one as old as the oldest, one without a submit time,
        # and a newer version of an existing task
        ingest(
            source,
            [
                record(next(arrivals), base + 10**9),
                record(next(arrivals), base),
                record(next(arrivals), None),
                record(page, base + (page // 2) * 1000, status="FAILURE"),
            ],
        )

    seen, pages = page_through(client, auth, f"{LIST}?limit=4", between_pages=sync_meanwhile)

    assert pages > 5
    assert len(seen) == len(set(seen)), "a task was served twice"
    assert before <= set(seen), "a task was skipped"


def test_a_task_that_gains_a_submit_time_while_paging_is_skipped_as_the_description_says(
    client, auth, source
):
    # Known and documented (tasks/api/openapi.py, the cursor): the walk is keyed on the submit
    # time, and a task that gains one moves from the end of the list into pages read.
    base = 1_700_000_000_000

    def record(n, submit, status):
        return {"id": f"1{n:015d}", "action": "IMAGINE", "status": status, "submitTime": submit}

    ingest(source, [record(n, base + n * 1000, "SUCCESS") for n in range(9)])
    ingest(source, [record(99, 0, "SUBMITTED")])  # a relay's "not yet": last in the list
    assert ids_of(client.get(LIST, headers=auth))[-1] == f"1{99:015d}"

    def submitted_meanwhile(page):
        if page == 1:
            ingest(source, [record(99, base + 10**6, "IN_PROGRESS")])

    seen, _ = page_through(client, auth, f"{LIST}?limit=3", between_pages=submitted_meanwhile)

    assert f"1{99:015d}" not in seen
    assert len(seen) == len(set(seen)) == 9
    parameters = openapi_schema()["paths"][LIST]["get"]["parameters"]
    cursor = next(p for p in parameters if p["name"] == "cursor")
    assert "gains one it moves near the start, into pages already read" in cursor["description"]


def test_a_page_never_has_more_than_limit_tasks_and_1000_by_default(client, auth, source):
    rows = []
    for n in range(1001):
        record = {"id": f"{n:016d}", "status": "SUCCESS", "submitTime": 1_700_000_000_000 + n}
        rows.append(record)
    ingest(source, rows)

    first = client.get(LIST, headers=auth)
    assert len(first.json()) == 1000
    assert first.json()[0]["id"] == f"{1000:016d}"
    rest = client.get(next_url(first), headers=auth)
    assert ids_of(rest) == [f"{0:016d}"]
    assert next_url(rest) is None
    assert len(client.get(LIST, {"limit": 10}, headers=auth).json()) == 10


def test_the_next_page_link_keeps_the_filters(client, auth, source):
    for n in range(5):
        task(source, f"{n:016d}", status="FAILURE", submitTime=1_700_000_000_000 + n)
    task(source, "9" * 16, submitTime=1_700_000_000_000)

    first = client.get(LIST, {"status": "FAILURE", "source": "main", "limit": 2}, headers=auth)
    link = urlsplit(next_url(first))
    query = parse_qs(link.query)

    assert link.path == LIST
    assert query["status"] == ["FAILURE"]
    assert query["source"] == ["main"]
    assert query["limit"] == ["2"]
    assert query["cursor"] == [first.headers["X-Next-Cursor"]]
    seen, _ = page_through(client, auth, f"{LIST}?status=FAILURE&limit=2")
    assert seen == [f"{n:016d}" for n in (4, 3, 2, 1, 0)]


def test_the_last_page_has_no_cursor(api, source):
    make_task(source)

    response = api.get(LIST, limit=1)

    assert "X-Next-Cursor" not in response.headers
    assert "Link" not in response.headers


def test_the_list_filters_by_status_and_action_repeatable(api, source):
    task(source, "1", status="SUCCESS", action="IMAGINE")
    task(source, "2", status="FAILURE", action="UPSCALE", submitTime=1_700_000_000_001)
    task(source, "3", status="IN_PROGRESS", action="IMAGINE")

    assert ids_of(api.get(LIST, status=["SUCCESS", "FAILURE"])) == ["2", "1"]
    assert ids_of(api.get(LIST, status="SUCCESS,IN_PROGRESS")) == ["3", "1"]
    assert ids_of(api.get(LIST, action="IMAGINE", status="IN_PROGRESS")) == ["3"]
    assert ids_of(api.get(LIST, action=["UPSCALE", "ZOOM"])) == ["2"]
    assert ids_of(api.get(LIST, status="NOPE")) == []


def test_the_list_filters_by_submit_time_with_dates_and_datetimes(api, source, settings):
    settings.TIME_ZONE = "UTC"
    may_1 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)
    hour = 3_600_000
    task(source, "1", submitTime=may_1 - hour)  # 30 April, 23:00
    task(source, "2", submitTime=may_1)  # 1 May, 00:00
    task(source, "3", submitTime=may_1 + 10 * hour)  # 1 May, 10:00
    task(source, "4", submitTime=may_1 + 24 * hour)  # 2 May, 00:00
    task(source, "5", submitTime=None)

    assert ids_of(api.get(LIST, submitted_after="2024-05-01")) == ["4", "3", "2"]
    assert ids_of(api.get(LIST, submitted_before="2024-05-01")) == ["1"]
    day = {"submitted_after": "2024-05-01", "submitted_before": "2024-05-02"}
    assert ids_of(api.get(LIST, **day)) == ["3", "2"]
    assert ids_of(api.get(LIST, submitted_after="2024-05-01T10:00:00Z")) == ["4", "3"]
    assert ids_of(api.get(LIST, submitted_after="2024-05-01T17:00:00+08:00")) == ["4", "3"]
    assert ids_of(api.get(LIST, submitted_before="2024-05-01T09:59")) == ["2", "1"]
    # Bounds beyond what a datetime holds are as good as none.
    assert ids_of(api.get(LIST, submitted_after="0001-01-01T00:00:00+14:00")) == [
        "4",
        "3",
        "2",
        "1",
    ]
    assert ids_of(api.get(LIST, submitted_before="9999-12-31T23:59:59-14:00")) == [
        "4",
        "3",
        "2",
        "1",
    ]


def test_the_list_filters_by_source_name(api, source):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    make_task(source, task_id="1")
    make_task(other, task_id="2")

    assert ids_of(api.get(LIST, source="other")) == ["2"]
    assert ids_of(api.get(LIST, source="main")) == ["1"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "99999999999999999999.1"}, "cursor"),
        ({"cursor": "١٢.٣"}, "cursor"),
        ({"submitted_after": "yesterday"}, "submitted_after"),
        ({"submitted_before": "2024-13-45"}, "submitted_before"),
    ],
)
def test_an_invalid_list_parameter_gives_400_with_a_json_error_naming_it(api, params, field):
    response = api.get(LIST, **params)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in response.json()["error"]


def test_an_unknown_source_name_gives_404_with_a_json_error(api, source):
    make_task(source)

    for response in (
        api.get(LIST, source="nope"),
        api.get(QUEUE, source="nope"),
        api.post(BY_IDS + "?source=nope", {"ids": ["1700000000000001"]}),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "no source named 'nope'"}
    # fetch says which id it was asked for, as for an unknown id
    response = api.get(fetch_url("1700000000000001"), source="nope")
    assert response.status_code == 404
    assert response.json() == {"error": "no source named 'nope'", "id": "1700000000000001"}


def test_a_nul_character_in_a_parameter_is_a_client_error_not_a_server_error(api, source):
    make_task(source)

    assert api.get(LIST, status="SUC\x00CESS").json() == []
    assert api.get(LIST, status="S" * 65).json() == []
    assert api.get(LIST, source="ma\x00in").status_code == 404
    assert api.get(LIST, cursor="1\x00.1").status_code == 400
    assert api.get(fetch_url("17%00")).status_code == 404
    assert api.post(BY_IDS, {"ids": ["1700000000000001\x00", "\ud800"]}).json() == []


# /mj/task/queue


def test_the_queue_holds_the_tasks_in_queue_oldest_first(api, source):
    task(source, "1", in_queue=True, status="IN_PROGRESS", submitTime=1_700_000_003_000)
    task(source, "2", in_queue=True, status="SUBMITTED", submitTime=1_700_000_001_000)
    task(source, "3", in_queue=False, status="SUCCESS", submitTime=1_700_000_002_000)
    task(source, "4", in_queue=True, status="NOT_START", submitTime=None)
    task(source, "5", in_queue=True, status="SUBMITTED", submitTime=1_700_000_002_000)

    response = api.get(QUEUE)

    assert response["Content-Type"] == "application/json"
    assert ids_of(response) == ["2", "5", "1", "4"]


def test_the_queue_follows_the_proxys_queue_after_a_sync(start_sim, make_source, api):
    sim = start_sim("novicezk", tasks=60)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    theirs = requests.get(f"{sim.url}/mj/task/queue", headers=sim_headers(sim), timeout=10)

    ours = api.get(QUEUE)

    assert [t["id"] for t in ours.json()] == [t["id"] for t in theirs.json()]


# /mj/task/list-by-condition


def test_list_by_condition_answers_in_request_order_leaving_unknown_ids_out(api, source):
    for n in "123":
        make_task(source, task_id=n)

    response = api.post(BY_IDS, {"ids": ["3", "nope", "1", "3", "2"]})

    assert response["Content-Type"] == "application/json"
    assert ids_of(response) == ["3", "1", "2"]


def test_list_by_condition_accepts_ids_sent_as_numbers(api, source):
    make_task(source, task_id="1700000000000001")

    assert ids_of(api.post(BY_IDS, {"ids": [1700000000000001]})) == ["1700000000000001"]


def test_list_by_condition_without_ids_gives_an_empty_list_like_the_proxy(api):
    for body in ({}, {"ids": None}, {"other": 1}):
        response = api.post(BY_IDS, body)
        assert response.status_code == 200
        assert response.json() == []


def test_an_id_in_several_sources_gives_the_most_recently_changed_unless_source_picks(api, source):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    now = timezone.now()
    make_task(source, last_changed=now - timedelta(hours=1), record={"status": "SUCCESS"})
    make_task(other, last_changed=now, record={"status": "FAILURE"})

    assert api.get(fetch_url("1700000000000001")).json()["status"] == "FAILURE"
    assert api.get(fetch_url("1700000000000001"), source="main").json()["status"] == "SUCCESS"
    by_ids = api.post(BY_IDS, {"ids": ["1700000000000001"]}).json()
    assert [t["status"] for t in by_ids] == ["FAILURE"]
    by_ids = api.post(BY_IDS + "?source=main", {"ids": ["1700000000000001"]}).json()
    assert [t["status"] for t in by_ids] == ["SUCCESS"]


def test_more_than_1000_ids_give_400_saying_so(api, source):
    make_task(source)

    assert api.post(BY_IDS, {"ids": [str(n) for n in range(1000)]}).status_code == 200
    response = api.post(BY_IDS, {"ids": [str(n) for n in range(1001)]})

    assert response.status_code == 400
    assert "at most 1000 ids" in response.json()["error"]
    assert "1001" in response.json()["error"]


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"ids": "1700000000000001"}, "ids must be a list"),
        ({"ids": {"a": 1}}, "ids must be a list"),
        ({"ids": ["1", None]}, "ids[1] is null"),
        ({"ids": ["1", {"id": "2"}]}, "ids[1] is an object"),
        ({"ids": [1.5]}, "ids[0] is a number with a fraction"),
        ({"ids": [True]}, "ids[0] is a boolean"),
        (["1700000000000001"], "must be a JSON object"),
        ("null", "must be a JSON object"),
    ],
)
def test_ids_that_are_not_a_list_of_strings_or_numbers_give_400_with_the_reason(api, body, reason):
    response = api.post(BY_IDS, body)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert reason in response.json()["error"]


@pytest.mark.parametrize("body", ['{"ids": [1,', "", "ids=1", b"\xff\xfe{}", "[" * 100_000])
def test_a_malformed_json_body_gives_400_with_the_reason(api, body):
    response = api.post(BY_IDS, body)

    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not valid JSON (")


def test_a_number_too_long_for_python_gives_400_saying_the_body_is_not_acceptable_json(api):
    for body in ('{"ids": [' + "7" * 5000 + "]}", '{"ids": [], "x": -' + "1" * 4301 + "}"):
        response = api.post(BY_IDS, body)

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error.startswith("the body is not acceptable JSON: ")
        assert "more than 4,300 digits" in error
        assert "sys." not in error and "int_max_str_digits" not in error

    # 4,300 digits are a number still (if no task id)
    assert api.post(BY_IDS, '{"ids": [' + "7" * 4300 + "]}").json() == []


def test_a_body_far_larger_than_any_valid_request_gives_413(api):
    response = api.post(BY_IDS, {"ids": ["1" * 64] * 1000, "padding": "x" * 3_000_000})

    assert response.status_code == 413
    assert "too large" in response.json()["error"]


# /mj/task/<id>/fetch


def test_fetch_gives_the_task(api, source):
    task = make_task(source, task_id="1700000000000001")

    response = api.get(fetch_url("1700000000000001"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, no-store"
    assert response.content.decode() == task.raw


def test_an_unknown_id_gives_404_with_a_json_error(api, source):
    make_task(source, task_id="1700000000000001")

    response = api.get(fetch_url("1700000000000002"))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "task not found", "id": "1700000000000002"}


def test_fetch_from_a_source_that_lacks_the_id_gives_404_even_when_another_has_it(api, source):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    make_task(other, task_id="1700000000000001")

    response = api.get(fetch_url("1700000000000001"), source="main")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "task not found", "id": "1700000000000001"}
    assert api.get(fetch_url("1700000000000001"), source="other").status_code == 200
    assert api.post(BY_IDS + "?source=main", {"ids": ["1700000000000001"]}).json() == []


def test_a_path_that_is_no_endpoint_gives_a_json_404(api):
    response = api.get("/mj/task/nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "no such endpoint" in response.json()["error"]


# Methods


@pytest.mark.parametrize(
    "method, url, allowed",
    [
        ("post", LIST, "GET, HEAD"),
        ("delete", QUEUE, "GET, HEAD"),
        ("get", BY_IDS, "POST"),
        ("put", BY_IDS, "POST"),
        ("post", fetch_url("1"), "GET, HEAD"),
        ("patch", "/mj/openapi.json", "GET, HEAD"),
    ],
)
def test_a_wrong_method_gives_405_with_a_json_error(client, auth, method, url, allowed):
    response = getattr(client, method)(url, headers=auth)

    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert "not allowed" in response.json()["error"]


# Auth


ENDPOINTS = [("get", LIST), ("get", QUEUE), ("post", BY_IDS), ("get", fetch_url("1"))]


@pytest.mark.parametrize("method, url", ENDPOINTS + [("get", "/mj/openapi.json")])
def test_no_credentials_give_401_with_a_json_error_and_no_redirect(client, method, url):
    response = getattr(client, method)(url)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "authentication required" in response.json()["error"]
    assert "Location" not in response.headers
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, url", ENDPOINTS)
def test_a_wrong_token_gives_401_without_echoing_it(client, token, method, url):
    wrong = token[:-4] + "AAAA" if not token.endswith("AAAA") else token[:-4] + "BBBB"

    for headers in ({"mj-api-secret": wrong}, {"Authorization": f"Bearer {wrong}"}):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"].startswith("invalid API token")
        assert wrong not in response.content.decode()
        assert token[:8] not in response.content.decode()


def test_the_token_works_in_the_mj_api_secret_header_and_as_a_bearer_token(client, token, source):
    make_task(source)

    for headers in (
        {"mj-api-secret": token},
        {"Mj-Api-Secret": token},
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"bearer {token}"},
        {"Authorization": token},  # trueai's style, no scheme
    ):
        assert client.get(LIST, headers=headers).status_code == 200, headers


def test_another_authorization_scheme_is_not_taken_for_a_token(client, token):
    response = client.get(LIST, headers={"Authorization": "Basic YWxpY2U6cHc="})

    assert response.status_code == 401
    assert "authentication required" in response.json()["error"]


def test_a_revoked_token_is_refused(client, user):
    row, token = create_token(user)
    ApiToken.objects.filter(pk=row.pk).update(revoked=True)

    assert client.get(LIST, headers={"mj-api-secret": token}).status_code == 401


def test_a_token_of_an_inactive_user_is_refused(client, user, token):
    user.is_active = False
    user.save()

    assert client.get(LIST, headers={"mj-api-secret": token}).status_code == 401


def test_a_token_is_stored_only_as_its_sha256_and_an_8_character_prefix(user):
    row, token = create_token(user)

    assert len(token) >= 43
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:8]
    stored = ApiToken.objects.filter(pk=row.pk).values().get()
    assert token not in json.dumps(stored, default=str)


def test_tokens_differ_each_time(user):
    assert create_token(user)[1] != create_token(user)[1]


def test_last_used_is_written_at_most_once_a_minute(client, user):
    row, token = create_token(user)
    headers = {"mj-api-secret": token}
    assert row.last_used is None

    client.get(LIST, headers=headers)
    first = ApiToken.objects.get(pk=row.pk).last_used
    client.get(LIST, headers=headers)
    assert ApiToken.objects.get(pk=row.pk).last_used == first

    ApiToken.objects.filter(pk=row.pk).update(last_used=timezone.now() - timedelta(seconds=61))
    client.get(LIST, headers=headers)
    assert ApiToken.objects.get(pk=row.pk).last_used > first


def test_a_logged_in_session_can_read_the_api(client, user, source):
    make_task(source)
    client.force_login(user)

    assert client.get(LIST).status_code == 200
    assert client.get(fetch_url("1700000000000001")).status_code == 200


def test_a_session_post_without_a_csrf_token_is_refused(user, source):
    make_task(source)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = browser.post(BY_IDS, {"ids": ["1700000000000001"]}, content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]


def test_a_session_post_with_a_csrf_token_passes(user, source):
    make_task(source)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    csrf = "abcdefghijklmnopqrstuvwxyzABCDEF"  # what a page's {% csrf_token %} would set
    browser.cookies["csrftoken"] = csrf

    response = browser.post(
        BY_IDS,
        {"ids": ["1700000000000001"]},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )

    assert ids_of(response) == ["1700000000000001"]


def test_a_token_post_needs_no_csrf_token(token, source):
    make_task(source)
    script = Client(enforce_csrf_checks=True)

    response = script.post(
        BY_IDS,
        {"ids": ["1700000000000001"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert ids_of(response) == ["1700000000000001"]


def test_no_token_ever_reaches_a_log_line(client, token, caplog, source):
    make_task(source)
    wrong = "x" * 43
    with caplog.at_level(logging.DEBUG):
        client.get(LIST, headers={"mj-api-secret": token})
        client.get(LIST, headers={"mj-api-secret": wrong})
        client.get(LIST, headers={"Authorization": f"Bearer {wrong}"})
        client.post(BY_IDS, "{", content_type="application/json", headers={"mj-api-secret": token})

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and token[:8] not in text
    assert wrong not in text


# The command


def test_create_api_token_prints_a_working_token_as_its_last_line(client, user, source):
    make_task(source)
    out = StringIO()

    call_command("create_api_token", "alice", stdout=out)

    token = out.getvalue().strip().splitlines()[-1]
    assert client.get(LIST, headers={"mj-api-secret": token}).status_code == 200
    assert ApiToken.objects.get().prefix == token[:8]


def test_create_api_token_for_an_unknown_user_says_so(user):
    with pytest.raises(CommandError, match="no user named 'bob'"):
        call_command("create_api_token", "bob")
    assert not ApiToken.objects.exists()


def test_create_api_token_for_an_inactive_user_says_so(user):
    user.is_active = False
    user.save()

    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", "alice")


# Query counts: fixed, whatever the number of tasks


@pytest.fixture
def fresh_auth(user):
    # last_used recent, so the request does not write it: 1 query for the token
    row, token = create_token(user)
    ApiToken.objects.filter(pk=row.pk).update(last_used=timezone.now())
    return {"mj-api-secret": token}


# One more per answer that holds tasks: the sources' secrets, to mask them.


@pytest.mark.parametrize("count", [3, 30])
def test_the_list_takes_three_queries_per_page(
    client, fresh_auth, source, django_assert_num_queries, count
):
    for n in range(count):
        task(source, f"{n:016d}", submitTime=1_700_000_000_000 + n)
    task(source, "9" * 16, submitTime=None)

    with django_assert_num_queries(3):  # the token, the dated tasks, the secrets
        first = client.get(LIST, {"limit": 2, "status": "SUCCESS"}, headers=fresh_auth)
    assert len(first.json()) == 2
    with django_assert_num_queries(4):  # the token, the dated tasks, the undated, the secrets
        last = client.get(LIST, headers=fresh_auth)
    assert len(last.json()) == count + 1
    with django_assert_num_queries(4):  # the token, the source, the tasks, the secrets
        client.get(LIST, {"source": "main", "limit": 2}, headers=fresh_auth)
    with django_assert_num_queries(3):  # the token, the dated, the undated; none: no secrets
        assert client.get(LIST, {"status": "NOPE"}, headers=fresh_auth).json() == []


@pytest.mark.parametrize("count", [3, 30])
def test_fetch_queue_and_list_by_condition_take_three_queries(
    client, fresh_auth, source, django_assert_num_queries, count
):
    for n in range(count):
        task(source, f"{n:016d}", in_queue=True, status="SUBMITTED")
    ids = [f"{n:016d}" for n in range(count)]

    with django_assert_num_queries(3):
        assert client.get(fetch_url(ids[0]), headers=fresh_auth).status_code == 200
    with django_assert_num_queries(3):
        assert len(client.get(QUEUE, headers=fresh_auth).json()) == count
    with django_assert_num_queries(2):
        assert client.get(fetch_url("1"), headers=fresh_auth).status_code == 404
    with django_assert_num_queries(3):
        response = client.post(
            BY_IDS, {"ids": ids}, content_type="application/json", headers=fresh_auth
        )
        assert len(response.json()) == count
