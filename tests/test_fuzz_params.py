"""Every query parameter of the pages, the exports and the API, and the bodies of the API
and the hook, driven with odd values: none may answer 500, and a streamed body must run
to its end.

Odd values: NUL and other control characters, lone surrogates and broken UTF-8 as
percent escapes, digits of other scripts, numbers past 64 bits, dates at the ends of
what a datetime holds with offsets that push them beyond, forged cursors, very long
strings, empty values, repeated and unknown parameters. A bounded number of examples,
derandomized, so a run is reproducible and takes seconds on either database.
"""

import json
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks.api.tokens import create_token
from tasks.models import Source
from tests.conftest import make_task

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000  # ms
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The parameters each endpoint reads (tasks/web/filters.py, tasks/web/views.py, tasks/api/views.py)
PAGE = ["status", "action", "q", "submitted_after", "submitted_before", "range", "source"]
PAGE += ["sort", "cursor", "before"]
LIVE = ["pk", "view"]
API_LIST = ["status", "action", "submitted_after", "submitted_before", "source", "limit"]
API_LIST += ["cursor"]
# Midjourney's parameters and who asked (tasks/ingest/derive.py), on the pages and the API.
PARAMETERS = ["mode", "version", "ar", "bot", "account", "caller"]
PAGE += PARAMETERS
API_LIST += PARAMETERS
# And ones none of them reads, as scripts and crawlers send them.
UNKNOWN = ["page", "format", "limit", "pk", "offset", "status[]", "x", "", "\x00", "²"]

HUGE = "9" * 20
ODD = [
    "", " ", "\x00", "a\x00b", "SUC\x00CESS", "\t\r\n", "\u200b", "\ufeff", "\ud800", "\udfff",
    "²", "١٢٣", "߀", "-1", "0", "1", HUGE, "-" + HUGE, "9" * 5000, "1e309", "NaN", "Infinity",
    "SUCCESS", "FAILURE", "IN_PROGRESS", "IMAGINE", "UPSCALE", "猫猫", "main", "other",
    "-submitted", "submitted", "-finished", "duration", "-duration", "1h", "24h", "30d",
    "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z",
    "2024-02-30", "2024-05-01T25:00", "2024-05-01T08:30:00+99:99", "2024-05-01 08:30",
    "2024-05-01T08:30:00.123456789", "+002024-05-01", "2024-W18-3", "yesterday",
    "k~0001-01-01T00:00:00+01:00~1", "k~9999-12-31T23:59:59-01:00~1", "k~~1", "~~",
    f"k~2023-11-14T22:14:20+00:00~{HUGE}", f"n~~{HUGE}", "n~~-1", f"k~{HUGE}~1", "k~-1~1",
    "null.1", "0.0", f"{HUGE}.{HUGE}", "99999999999999999.999999999999999999", "1\x00.1",
    "x" * 3000, "[" * 2000, "<script>alert(1)</script>", "' OR 1=1 --", "%", "%00",
    "fast", "RELAXED", "turbo,fast", "v 6.1", "niji 6", "niji\x006", "16:9", "16 : 9",
    "99999:99999", "MID_JOURNEY", "niji_journey", "1300000000000000001", "uid:3", "a,b",
]  # fmt: skip
# Raw query-string bytes, sent as they are: broken percent escapes and bytes that are
# not UTF-8 (an encoded surrogate, an overlong NUL, a lone continuation byte).
RAW = ["%ED%A0%80", "%ED%BF%BF", "%C0%80", "%FF", "%80", "%", "%zz", "%E2%82", "a%00b", "+"]


def dates():
    """ISO dates and datetimes, mostly at the ends of years 1-9999, with any offset a
    string may carry (Python takes up to 23:59, PostgreSQL up to 15:59), or none."""
    return st.builds(
        lambda y, mo, d, h, mi, sign, oh, om, sep, zone: (
            f"{y:04d}-{mo:02d}-{d:02d}"
            + ("" if zone == "date" else f"{sep}{h:02d}:{mi:02d}:00")
            + (f"{sign}{oh:02d}:{om:02d}" if zone == "offset" else "Z" if zone == "Z" else "")
        ),
        st.sampled_from([1, 1, 1, 9999, 9999, 9999, 2, 1970, 2024, 9998]),
        st.sampled_from([1, 12]) | st.integers(1, 12),
        st.sampled_from([1, 31]) | st.integers(1, 31),
        st.sampled_from([0, 23]) | st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from("+-"),
        st.integers(0, 25),
        st.integers(0, 59),
        st.sampled_from("T "),
        st.sampled_from(["offset", "offset", "offset", "Z", "naive", "date"]),
    )


def cursors():
    """Page cursors of both kinds (the pages' k~iso~pk and n~~pk, the API's micros.pk)."""
    number = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(["²", "١", "", HUGE])
    return (
        st.builds(lambda d, pk: f"k~{d}~{pk}", dates(), number)
        | st.builds(lambda v, pk: f"k~{v}~{pk}", number, number)
        | st.builds(lambda pk: f"n~~{pk}", number)
        | st.builds(lambda micros, pk: f"{micros}.{pk}", number, number)
    )


ANY_CHAR = st.characters(codec=None)  # surrogates and control characters included
VALUES = (
    st.sampled_from(ODD)
    | dates()
    | cursors()
    | st.integers(-(2**80), 2**80).map(str)
    | st.text(ANY_CHAR, max_size=40)
)


def escaped(text):
    """Percent-escaped UTF-8 (a lone surrogate as the three bytes that would encode it)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def numbers():
    return (
        st.integers(-(2**80), 2**80).map(str)
        | st.integers(0, 10).map(str)
        | st.sampled_from(["²", "١٢", "߀", HUGE, "1e3", " 5", "0x1f", "5.0"])
    )


# What each parameter is meant to hold, tried more often than the odd values of the rest.
MEANT = {
    "submitted_after": dates(),
    "submitted_before": dates(),
    "cursor": cursors(),
    "before": cursors(),
    "pk": numbers(),
    "limit": numbers(),
    "status": st.sampled_from(["SUCCESS", "FAILURE", "ODD\x00STATUS", "ODD\ufffdSTATUS", ""]),
    "action": st.sampled_from(["IMAGINE", "UPSCALE", "VARIATION", "A\x00", "S" * 65]),
    "sort": st.sampled_from(["-submitted", "submitted", "-finished", "finished", "duration"])
    | st.sampled_from(["-duration", "-", "?", "id"]),
    "range": st.sampled_from(["1h", "24h", "7d", "30d", "1y", "-1h"]),
    "source": st.sampled_from(["main", "other", "nope", "ma\x00in", "m" * 51]),
}


def pairs(name):
    """(name, value) with a value meant for the parameter or an odd one."""
    meant = MEANT.get(name)
    value = VALUES if meant is None else st.one_of(meant, meant, VALUES)
    return st.tuples(st.just(name), value.map(escaped) | st.sampled_from(RAW))


def query(names):
    """A query string of 0-6 parameters: mostly the endpoint's, also unknown ones,
    and repeats."""
    known = st.sampled_from(names).flatmap(pairs)
    unknown = st.tuples(
        st.sampled_from(UNKNOWN) | st.text(ANY_CHAR, max_size=8),
        VALUES.map(escaped) | st.sampled_from(RAW),
    )
    pair = st.one_of(known, known, known, unknown)
    return st.lists(pair, max_size=6).map(
        lambda items: "&".join(f"{escaped(name)}={value}" for name, value in items)
    )


def task_ids():
    return st.sampled_from(["1700000000000001", "1700000000000003", "nope"]) | st.text(
        ANY_CHAR, min_size=1, max_size=70
    )


def json_values():
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False)
        | st.text(ANY_CHAR, max_size=20)
        | st.sampled_from(ODD)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(ANY_CHAR, max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


def dumped(value):
    """JSON text as bytes; a lone surrogate written as its \\u escape."""
    return json.dumps(value).encode()


# Bodies: JSON of any shape, and bytes that are not (or not quite) JSON.
RAW_BODIES = [
    b"", b" ", b"null", b"{", b"[" * 100_000 + b"]" * 100_000, b'{"ids":' + b"[" * 5000,
    b"\xff\xfe", b'{"ids":["\xed\xa0\x80"]}', b'{"ids":[NaN]}', b'{"ids":[1e999]}',
    b'{"ids":[' + b"7" * 5000 + b"]}", b'{"id":"1","status":"\x00"}', b'{"ids":"\\u0000"}',
    b'{"id":"1700000000000009","submitTime":' + b"9" * 400 + b"}",
]  # fmt: skip


def list_bodies():
    ids = st.lists(st.sampled_from(["1700000000000001"]) | json_values(), max_size=6)
    return (
        st.builds(lambda ids: dumped({"ids": ids}), ids)
        | json_values().map(dumped)
        | st.sampled_from(RAW_BODIES)
    )


FIELDS = ["id", "status", "action", "prompt", "progress", "submitTime", "startTime"]
FIELDS += ["finishTime", "imageUrl", "properties", "buttons", "failReason"]


def hook_bodies():
    record = st.dictionaries(st.sampled_from(FIELDS), json_values(), max_size=8)
    with_id = st.builds(
        lambda r, task_id: {**r, "id": task_id},
        record,
        st.sampled_from(["1700000000000001", "1700000000000777"]) | json_values(),
    )
    return (
        with_id.map(dumped)
        | record.map(dumped)
        | json_values().map(dumped)
        | st.sampled_from(RAW_BODIES)
    )


# The cases issue 13 names, always tried first (escaped as a browser sends them)
ISSUE_QUERIES = [
    "submitted_after=0001-01-01T00:00:00%2B01:00",
    "submitted_before=9999-12-31T23:59:59-01:00",
    "submitted_after=2024-05-01T08:30:00%2B16:15",  # beyond PostgreSQL's offsets
    "cursor=k~0001-01-01T00:00:00%2B01:00~1",
    "before=k~9999-12-31T23:59:59-01:00~1",
    f"cursor=n~~{HUGE}",
    "status=a%00b&action=a%00b",
    "q=a%00b&source=a%00b&sort=a%00b",
]


def with_examples(name, values):
    def decorate(test):
        for value in reversed(values):
            test = example(**{name: value})(test)
        return test

    return decorate


# The fixtures: rows the filters find, a logged-in person, an API token


@pytest.fixture
def rows():
    main = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    for n, (status, action) in enumerate(
        [
            ("SUCCESS", "IMAGINE"),
            ("FAILURE", "UPSCALE"),
            ("IN_PROGRESS", "IMAGINE"),
            ("ODD\x00STATUS", "VARIATION"),
            ("", ""),
        ],
        start=1,
    ):
        record = {"status": status, "action": action, "prompt": f"猫猫 {n}"}
        record["submitTime"] = T0 + n * 60_000 if n != 5 else None
        record["finishTime"] = T0 + n * 120_000 if status in ("SUCCESS", "FAILURE") else None
        make_task(main, task_id=f"170000000000000{n}", record=record, in_queue=n == 3)
    make_task(other, task_id="1700000000000001", record={"submitTime": T0})
    return main


@pytest.fixture
def person():
    client = Client()
    client.force_login(User.objects.create_user("reader"))
    return client


@pytest.fixture
def scripts():
    _, token = create_token(User.objects.create_user("script"))
    return Client(headers={"mj-api-secret": token})


def answered(response):
    """The response's status; a streamed body is read to its end on the way."""
    if response.streaming:
        b"".join(response.streaming_content)  # raises if the stream breaks off
    assert response.status_code < 500, response.status_code
    return response.status_code


# The pages and exports


@pytest.mark.parametrize(
    "path",
    ["/tasks/", "/gallery/", "/tasks/export.csv", "/tasks/export.jsonl"],
)
@FUZZ
@given(qs=query(PAGE))
@with_examples("qs", ISSUE_QUERIES)
def test_the_list_gallery_and_exports_take_any_query(rows, person, path, qs):
    answered(person.get(f"{path}?{qs}"))


@FUZZ
@given(qs=query(LIVE + PAGE), ids=st.lists(numbers().map(escaped), max_size=4))
@example(qs="", ids=["%C2%B2"])
@example(qs="", ids=[HUGE])
def test_the_live_rows_take_any_ids(rows, person, qs, ids):
    extra = "".join(f"&pk={pk}" for pk in ids)
    answered(person.get(f"/tasks/live/?{qs}{extra}"))


@FUZZ
@given(task_id=task_ids(), qs=query(["source"]), live=st.booleans())
def test_a_tasks_page_takes_any_id_and_query(rows, person, task_id, qs, live):
    path = f"/tasks/{escaped(task_id)}/" + ("live/" if live else "")
    assert answered(person.get(f"{path}?{qs}")) in (200, 404)


@FUZZ
@given(qs=query(["q", "o", "p", "e"]))
def test_the_admins_task_search_takes_any_query(rows, qs):
    staff = Client()
    staff.force_login(User.objects.get_or_create(username="staff", is_staff=True)[0])
    # The admin's own filters refuse what they do not know with a redirect (302).
    assert answered(staff.get(f"/admin/tasks/task/?{qs}")) in (200, 302, 400, 403)


# The mirror API


@FUZZ
@given(qs=query(API_LIST))
@with_examples("qs", ISSUE_QUERIES + ["limit=%C2%B2", f"limit={HUGE}", "cursor=1%00.1"])
def test_the_api_list_takes_any_query(rows, scripts, qs):
    assert answered(scripts.get(f"/mj/task/list?{qs}")) in (200, 400, 404)


@FUZZ
@given(task_id=task_ids(), qs=query(["source"]), queue=st.booleans())
def test_the_api_fetch_and_queue_take_any_id_and_query(rows, scripts, task_id, qs, queue):
    path = "/mj/task/queue" if queue else f"/mj/task/{escaped(task_id)}/fetch"
    assert answered(scripts.get(f"{path}?{qs}")) in (200, 400, 404)


@FUZZ
@given(body=list_bodies(), qs=query(["source"]))
@example(body=RAW_BODIES[4], qs="")
def test_list_by_condition_takes_any_body(rows, scripts, body, qs):
    response = scripts.post(
        f"/mj/task/list-by-condition?{qs}", body, content_type="application/json"
    )
    assert answered(response) in (200, 400, 404, 413)
    assert response["Content-Type"] == "application/json"


# The hook


@FUZZ
@given(body=hook_bodies())
@with_examples("body", RAW_BODIES)
def test_the_hook_takes_any_body(rows, body):
    response = Client().post(f"/hooks/mj/{rows.hook_token}/", body, content_type="text/plain")
    assert answered(response) in (200, 400)
    assert response["Content-Type"] == "application/json"
