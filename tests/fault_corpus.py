"""Hostile and broken proxy answers for the sync, as data (tests/test_faults.py runs them).

Each `Fault` breaks one endpoint of an otherwise healthy proxy (the fault server
passes every other request through to a simulator) and says how the pass must end:
`failed` with words in its error, `ok` with so many records counted invalid and the
hostile-but-valid ones stored as described, or `either` of the two where both are
fair answers (a body that is not strict JSON may be refused whole). A case that
exposes an application bug names it in `bug`: the test is a strict xfail until fixed.

Cases with a `target` aim their hostile records at a task the mirror already holds
(the healthy fixture's, picked from the Context): that row must keep its raw, hash
and status, so "every stored task is unchanged" is not true merely because the
hostile ids were new.
"""

import gzip
import io
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tasks.ingest.json_items import iter_items_in_place
from tests.faultserver import Reply

LIST = ("GET", "/mj/task/list")
QUEUE = ("GET", "/mj/task/queue")
BY_IDS = ("POST", "/mj/task/list-by-condition")

# A valid record the mirror has never seen: every list or queue of an `ok` case
# carries it, so each case also shows that the good records of a bad answer are stored.
FRESH = {
    "id": "1800000000000999",
    "action": "IMAGINE",
    "status": "SUCCESS",
    "prompt": "灯塔",
    "submitTime": 1800000000000,
    "finishTime": 1800000060000,
    "progress": "100%",
}
T_1700 = datetime.fromtimestamp(1_700_000_000, tz=UTC)


def task(task_id, **fields):
    record = {"id": task_id, "action": "IMAGINE", "status": "SUCCESS", "progress": "100%"}
    record.update(fields)
    return record


def dumps(value):
    return json.dumps(value, ensure_ascii=False).encode()


def splice(body, items=(), raw=b""):
    """A JSON array's text with more items, and raw JSON text (NaN, bad bytes), appended.

    The array's own text is kept byte for byte: the mirror stores each record's text
    as received, so re-serialising the healthy records would change them.
    """
    body = body.rstrip()
    assert body.endswith(b"]"), body[-20:]
    extra = [dumps(item) for item in items] + ([raw] if raw else [])
    if not extra:
        return body
    head = body[:-1].rstrip()
    joiner = b"," if not head.endswith(b"[") else b""
    return head + joiner + b",".join(extra) + b"]"


@dataclass
class Context:
    good_body: bytes  # the healthy simulator's /list, exactly as it sends it
    stored_ids: list  # every task the mirror held before the bad pass
    source_name: str = ""  # the source the mirror holds them under

    @property
    def good(self):
        return json.loads(self.good_body)

    def stored_record(self, task_id):
        """The healthy proxy's record of a stored task, as the mirror holds it."""
        return next(r for r in self.good if r["id"] == task_id)


@dataclass
class Fault:
    id: str
    routes: object  # Context -> {(method, path): Reply or callable(request body) -> Reply}
    outcome: str  # "failed", "ok", or "either" (a clear failure or the bad records counted)
    message: tuple = ()  # words the error must contain (a tuple inside: any one of them)
    invalid: int | None = 0  # records counted invalid (ok); None: any number
    reasons: tuple = ()  # words some InvalidRecord reason must contain, one each
    stored: dict = field(default_factory=dict)  # task_id -> {field: value}; "raw": the dict
    fresh: bool = True  # FRESH must be stored (ok)
    full: bool = True
    settings: dict = field(default_factory=dict)
    check: object = None  # callable(ctx, server, run) for anything else
    bug: str = ""  # a known application bug: the case is a strict xfail
    bug_on_postgresql: str = ""  # the same, on PostgreSQL only
    # Cases aimed at a task the mirror already holds: target(ctx) is its id. Its row must
    # keep its raw, hash and status, unless `target_becomes` names what a valid record
    # changes ({field: value}; "raw": callable(ctx) -> the dict now stored).
    target: object = None
    target_becomes: dict = field(default_factory=dict)
    invalid_target: bool = True  # the invalid rows name the target's id (it was readable)
    stale: int | None = None  # records counted stale (ok); None: not checked


# Route builders


def on(endpoint, reply):
    return lambda ctx: {endpoint: reply(ctx) if callable(reply) else reply}


def list_with(*items, raw=b""):
    """/list: the healthy list, FRESH, then these items (and raw JSON text)."""
    return lambda ctx: {LIST: Reply(body=splice(ctx.good_body, [FRESH, *items], raw))}


def queue_with(*items, raw=b""):
    return lambda ctx: {QUEUE: Reply(body=splice(b"[]", [FRESH, *items], raw))}


def list_body(make):
    """/list answered with make(ctx) -> bytes."""
    return lambda ctx: {LIST: Reply(body=make(ctx))}


def by_ids(reply):
    # A light pass with no queue endpoint asks list-by-condition for every unfinished task.
    return lambda ctx: {QUEUE: Reply(404, b"", {}), BY_IDS: reply}


def transient(failure, then):
    """Fails once, then answers with then(ctx)."""

    def routes(ctx):
        calls = []

        def reply(body):
            calls.append(body)
            return failure if len(calls) == 1 else then(ctx)

        return {LIST: reply}

    return routes


def nested(depth, leaf=b"1"):
    return b"[" * depth + leaf + b"]" * depth


NESTED_64 = json.loads(nested(64))


def big_list(ctx, size_mb):
    padding = task("1800000000000998", prompt="x" * (size_mb * 1024 * 1024))
    return splice(ctx.good_body, [padding])


def one_stored(ctx):
    return ctx.stored_ids[0]


# Hostile records that carry the id of a task the mirror already holds


def stored_with(ctx, status):
    """The first stored task (by id) whose healthy record has this status."""
    return next(i for i in ctx.stored_ids if ctx.stored_record(i)["status"] == status)


def finished_task(ctx):
    return stored_with(ctx, "SUCCESS")


def running_task(ctx):
    return stored_with(ctx, "NOT_START")  # the healthy fixture's "still running" tasks


def altered(ctx, target, **fields):
    """The target's healthy record with these fields changed."""
    return {**ctx.stored_record(target(ctx)), **fields}


def raw_in(record, marker, raw):
    """The record's JSON text with the string "marker" (quotes included) replaced by raw
    bytes: NaN, a raw control character, bytes that are not UTF-8, a huge number."""
    text = dumps(record)
    quoted = dumps(marker)
    assert text.count(quoted) == 1, marker
    return text.replace(quoted, raw)


def span_of(ctx, task_id):
    """Where the task's record is in the healthy list's bytes: (start, end)."""
    spans = [
        (start, start + len(data))
        for item, data, start in iter_items_in_place(io.BytesIO(ctx.good_body))
        if isinstance(item.value, dict) and item.value.get("id") == task_id
    ]
    assert len(spans) == 1, f"{task_id} is in the healthy list {len(spans)} times"
    return spans[0]


def list_replacing(target, make):
    """/list: the healthy list with the target's record (its exact bytes) replaced by the
    bytes make(ctx) returns (one item's text or several, comma-separated), and FRESH.

    The healthy version of the task is then absent from the answer: only the hostile
    one speaks for it (list_with would put both in one answer).
    """

    def routes(ctx):
        start, end = span_of(ctx, target(ctx))
        body = ctx.good_body[:start] + make(ctx) + ctx.good_body[end:]
        return {LIST: Reply(body=splice(body, [FRESH]))}

    return routes


def list_replacing_with(target, **fields):
    return list_replacing(target, lambda ctx: dumps(altered(ctx, target, **fields)))


def list_with_twin(target, twin_first, **fields):
    """/list: the healthy list, where the target's healthy record is also followed (or
    preceded) by a broken twin: one id twice in one answer."""

    def routes(ctx):
        start, end = span_of(ctx, target(ctx))
        good = ctx.good_body[start:end]  # its exact text: unchanged for the mirror
        twin = dumps(altered(ctx, target, **fields))
        both = twin + b"," + good if twin_first else good + b"," + twin
        return list_replacing(target, lambda ctx: both)(ctx)

    return routes


def queue_aimed(target, **fields):
    """/queue: FRESH and the target's record with these fields; the list stays healthy."""
    return lambda ctx: queue_with(altered(ctx, target, **fields))(ctx)


JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}
GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
SHORT_TIMEOUT = {"MJ_READ_TIMEOUT": 0.5}
ONE_MB = {"MJ_MAX_BODY_MB": 1}
RETRY_TWICE = {"MJ_RETRIES": 2}
HTML_PAGE = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"

NUMERIC_ID = 1800000000000005
DUPLICATES = [
    task("1800000000000010", status="SUBMITTED", progress="0%"),
    task("1800000000000010", status="SUCCESS", progress="100%", imageUrl="https://x/a.png"),
    task("1800000000000010", status="IN_PROGRESS", progress="62%"),
    task("1800000000000010", status="NOT_START", progress=None),
]
NUL_RECORD = task(
    "1800000000000030",
    prompt="a\x00b",
    failReason="\x00",
    properties={"finalPrompt": "x\x00y", "k\x00": ["\x00"]},
    extra="\x00",
)


def with_numeric_id(ctx):
    record = ctx.stored_record(finished_task(ctx))
    return {**record, "id": int(record["id"])}


def stored_id_as_a_float(ctx):
    record = ctx.stored_record(finished_task(ctx))
    return dumps({**record, "id": "__ID__"}).replace(b'"__ID__"', record["id"].encode() + b".0")


def check_retries(path, count):
    def check(ctx, server, run):
        assert len(server.requests_to(path)) == count, server.requests

    return check


def error_lacks(run, text):
    assert text not in run.error, run.error


CORPUS = [
    # --- The transport: bodies that stall, break off, or are not HTTP at all ---
    Fault(
        "list-sends-headers-then-its-body-stalls",
        lambda ctx: {LIST: Reply(body=ctx.good_body, stall_after=200)},
        "failed",
        ("/mj/task/list", "did not answer within", "MJ_READ_TIMEOUT"),
        settings=SHORT_TIMEOUT,
    ),
    Fault(
        "queue-sends-headers-then-its-body-stalls",
        on(QUEUE, Reply(body=dumps([FRESH]), stall_after=20)),
        "failed",
        ("/mj/task/queue", "did not answer within", "MJ_READ_TIMEOUT"),
        settings=SHORT_TIMEOUT,
    ),
    Fault(
        "list-by-condition-answers-after-the-read-timeout",
        by_ids(Reply(body=b"[]", delay=2)),
        "failed",
        ("list-by-condition", "did not answer within 0.5 s", "MJ_READ_TIMEOUT"),
        full=False,
        settings=SHORT_TIMEOUT,
    ),
    Fault(
        "list-connection-reset-mid-body",
        lambda ctx: {LIST: Reply(body=ctx.good_body, cut_after=300, reset=True)},
        "failed",
        ("/mj/task/list", "broke off"),
    ),
    Fault(
        "list-body-ends-before-its-content-length",
        lambda ctx: {LIST: Reply(body=ctx.good_body, cut_after=len(ctx.good_body) // 2)},
        "failed",
        ("/mj/task/list", "broke off"),
    ),
    Fault(
        "queue-body-ends-before-its-content-length",
        on(QUEUE, Reply(body=dumps([FRESH] * 5), cut_after=50)),
        "failed",
        ("/mj/task/queue", "broke off"),
    ),
    Fault(
        "list-chunked-body-breaks-off",
        lambda ctx: {LIST: Reply(body=ctx.good_body, chunked=True, chunk_size=100, cut_after=450)},
        "failed",
        ("/mj/task/list", "broke off"),
    ),
    Fault(
        "list-with-a-broken-chunk-size",
        on(
            LIST,
            Reply(
                raw=b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n[]\r\n0\r\n\r\n"
            ),
        ),
        "failed",
        ("/mj/task/list",),
    ),
    Fault(
        "list-connection-closed-without-an-answer",
        on(LIST, Reply(raw=b"")),
        "failed",
        ("/mj/task/list",),
    ),
    Fault(
        "list-answered-by-something-that-is-not-http",
        on(LIST, Reply(raw=b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")),
        "failed",
        ("/mj/task/list",),
    ),
    Fault(
        "list-content-length-larger-than-the-body",
        lambda ctx: {LIST: Reply(body=ctx.good_body, declared_length=len(ctx.good_body) + 5000)},
        "failed",
        ("/mj/task/list", "broke off"),
    ),
    Fault(
        "list-content-length-smaller-than-the-body",
        lambda ctx: {LIST: Reply(body=ctx.good_body, declared_length=len(ctx.good_body) // 3)},
        "failed",
        ("/mj/task/list", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "queue-content-length-smaller-than-the-body",
        on(QUEUE, Reply(body=dumps([FRESH, FRESH]), declared_length=40)),
        "failed",
        ("/mj/task/queue", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "list-gzip-header-over-garbage",
        on(LIST, Reply(body=os.urandom(2000), headers=GZIP)),
        "failed",
        ("/mj/task/list",),
    ),
    Fault(
        "queue-gzip-header-over-garbage",
        on(QUEUE, Reply(body=b"\x1f\x8b\x08\x00garbage", headers=GZIP)),
        "failed",
        ("/mj/task/queue",),
    ),
    Fault(
        "list-gzip-bomb-beyond-the-size-limit",
        on(LIST, Reply(body=gzip.compress(b"[" + b" " * (3 * 1024 * 1024) + b"]"), headers=GZIP)),
        "failed",
        ("/mj/task/list", "more than 1 MB", "MJ_MAX_BODY_MB"),
        settings=ONE_MB,
    ),
    Fault(
        "list-gzip-compressed-and-valid",
        lambda ctx: {LIST: Reply(body=gzip.compress(splice(ctx.good_body, [FRESH])), headers=GZIP)},
        "ok",
    ),
    Fault(
        "list-redirects-to-itself-forever",
        on(LIST, Reply(302, b"", {"Location": "/mj/task/list"})),
        "failed",
        ("/mj/task/list", "redirects"),
    ),
    # --- Sizes ---
    Fault(
        "list-over-the-size-limit-with-a-content-length",
        lambda ctx: {LIST: Reply(body=big_list(ctx, 2))},
        "failed",
        ("/mj/task/list", "more than 1 MB", "MJ_MAX_BODY_MB"),
        settings=ONE_MB,
    ),
    Fault(
        "list-over-the-size-limit-without-a-content-length",
        lambda ctx: {LIST: Reply(body=big_list(ctx, 2), chunked=True)},
        "failed",
        ("/mj/task/list", "more than 1 MB", "MJ_MAX_BODY_MB"),
        settings=ONE_MB,
    ),
    Fault(
        "queue-over-the-size-limit",
        on(QUEUE, Reply(body=dumps([task("1800000000000997", prompt="x" * 2_000_000)]))),
        "failed",
        ("/mj/task/queue", "more than 1 MB", "MJ_MAX_BODY_MB"),
        settings=ONE_MB,
    ),
    Fault(
        "list-with-a-ten-megabyte-prompt",
        list_with(task("1800000000000040", prompt="cat " * 2_500_000)),
        "ok",
        stored={"1800000000000040": {"prompt_len": 10_000_000}},
    ),
    # --- Status codes ---
    Fault(
        "list-500-with-an-html-error-page",
        on(LIST, Reply(500, b"<html><body>Internal Server Error</body></html>", HTML)),
        "failed",
        ("500 from", "/mj/task/list"),
    ),
    Fault(
        "list-502-is-retried-then-fails",
        on(LIST, Reply(502, b"Bad Gateway", {})),
        "failed",
        ("502 from", "/mj/task/list"),
        check=check_retries("/mj/task/list", 3),
        settings=RETRY_TWICE,
    ),
    Fault(
        "queue-503-is-retried-then-fails",
        on(QUEUE, Reply(503, b"Service Unavailable", {"Retry-After": "1"})),
        "failed",
        ("503 from", "/mj/task/queue"),
        check=check_retries("/mj/task/queue", 3),
        settings=RETRY_TWICE,
    ),
    Fault(
        "list-by-condition-504-is-retried-then-fails",
        by_ids(Reply(504, b"Gateway Timeout", {})),
        "failed",
        ("504 from", "list-by-condition"),
        full=False,
        check=check_retries("/mj/task/list-by-condition", 3),
        settings=RETRY_TWICE,
    ),
    Fault(
        "list-502-once-then-fine",
        transient(Reply(502, b"", {}), lambda ctx: Reply(body=splice(ctx.good_body, [FRESH]))),
        "ok",
        check=check_retries("/mj/task/list", 2),
        settings=RETRY_TWICE,
    ),
    Fault(
        "list-by-condition-401-in-plain-text",
        by_ids(Reply(401, b"Unauthorized", {"Content-Type": "text/plain"})),
        "failed",
        ("401 from", "secret"),
        full=False,
    ),
    Fault(
        "list-403",
        on(LIST, Reply(403, dumps({"error": "forbidden"}), JSON)),
        "failed",
        ("403 from", "secret"),
    ),
    Fault(
        "queue-429-with-retry-after-in-seconds",
        on(QUEUE, Reply(429, b"", {"Retry-After": "30"})),
        "failed",
        ("429 from", "rate limiting", "30 s"),
    ),
    Fault(
        "list-429-with-retry-after-as-a-date",
        on(LIST, Reply(429, b"", {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})),
        "failed",
        ("429 from", "Wed, 21 Oct 2026 07:28:00 GMT"),
        check=lambda ctx, server, run: error_lacks(run, "GMT s"),
    ),
    Fault(
        "list-429-without-retry-after",
        on(LIST, Reply(429, b"", {})),
        "failed",
        ("429 from", "rate limiting"),
    ),
    Fault(
        "list-418-an-unusual-status",
        on(LIST, Reply(418, b"I'm a teapot", {})),
        "failed",
        ("418 from",),
    ),
    Fault(
        "list-404",
        on(LIST, Reply(404, b"", {})),
        "failed",
        ("404 from", "/mj/task/list"),
    ),
    Fault("queue-404-is-no-queue-not-a-failure", on(QUEUE, Reply(404, b"", {})), "ok", fresh=False),
    Fault(
        "queue-redirects-to-a-login-page",
        lambda ctx: {
            QUEUE: Reply(302, b"", {"Location": "/login"}),
            ("GET", "/login"): Reply(200, HTML_PAGE, HTML),
        },
        "either",  # "no queue here", or a clear refusal to follow redirects
        ("/mj/task/queue",),
        fresh=False,
    ),
    Fault(
        "list-by-condition-answers-an-html-page",
        by_ids(Reply(body=HTML_PAGE, headers=HTML)),
        "failed",
        ("list-by-condition", "HTML page"),
        full=False,
    ),
    Fault(
        "queue-answers-an-html-page",
        on(QUEUE, Reply(body=HTML_PAGE, headers=HTML)),
        "ok",
        fresh=False,
    ),
    # --- Bodies of the wrong shape ---
    Fault(
        "list-html-page-labelled-json",
        on(LIST, Reply(body=HTML_PAGE)),
        "failed",
        ("/mj/task/list", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "queue-html-page-labelled-json",
        on(QUEUE, Reply(body=HTML_PAGE)),
        "failed",
        ("/mj/task/queue", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "list-truncated-json",
        list_body(lambda ctx: ctx.good_body[:-40]),
        "failed",
        ("/mj/task/list", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "queue-truncated-json",
        on(QUEUE, Reply(body=dumps([FRESH])[:-5])),
        "failed",
        ("/mj/task/queue", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "list-an-object-not-an-array",
        list_body(lambda ctx: dumps({"code": 1, "description": "ok", "result": ctx.good})),
        "failed",
        ("/mj/task/list", "an object, not a list of tasks"),
    ),
    Fault(
        "queue-an-object-not-an-array",
        on(QUEUE, Reply(body=dumps({"error": "queue disabled"}))),
        "failed",
        ("/mj/task/queue", "not a list of tasks"),
    ),
    Fault(
        "list-by-condition-an-object-not-an-array",
        by_ids(Reply(body=dumps({"status": 400, "error": "Bad Request"}))),
        "failed",
        ("list-by-condition", "not a list of tasks"),
        full=False,
    ),
    Fault(
        "list-a-bare-string",
        on(LIST, Reply(body=b'"ok"')),
        "failed",
        ("/mj/task/list", "a single value"),
    ),
    Fault(
        "list-null", on(LIST, Reply(body=b"null")), "failed", ("/mj/task/list", "a single value")
    ),
    Fault(
        "list-empty-body",
        on(LIST, Reply(body=b"")),
        "failed",
        ("/mj/task/list", "empty body"),
    ),
    Fault(
        "queue-empty-body",
        on(QUEUE, Reply(body=b"")),
        "failed",
        ("/mj/task/queue", "empty body"),
    ),
    Fault(
        "list-trailing-garbage-after-the-array",
        list_body(lambda ctx: ctx.good_body + b" <!-- served by tomcat -->"),
        "failed",
        ("/mj/task/list", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "list-two-arrays-back-to-back",
        list_body(lambda ctx: ctx.good_body + ctx.good_body),
        "failed",
        ("/mj/task/list", ("JSON", "not a list of tasks")),
    ),
    Fault(
        "list-with-a-utf8-byte-order-mark",
        list_body(lambda ctx: b"\xef\xbb\xbf" + ctx.good_body),
        "failed",
        ("/mj/task/list",),
    ),
    Fault(
        "list-invalid-utf8",
        list_with(raw=b'{"id":"1800000000000050","prompt":"\xff\xfe\xc3("}'),
        "ok",
        invalid=1,
        reasons=("bytes that are not UTF-8",),
    ),
    Fault(
        "queue-invalid-utf8",
        queue_with(raw=b'{"id":"1800000000000050","prompt":"\xff\xfe\xc3("}'),
        "ok",
        invalid=1,
        reasons=("bytes that are not UTF-8",),
    ),
    Fault(
        "list-nan-and-infinity-literals",
        list_with(raw=b'{"id":"1800000000000060","progress":NaN,"submitTime":Infinity}'),
        "ok",
        invalid=1,
        reasons=("NaN is not a JSON value",),
    ),
    Fault(
        "list-a-raw-nul-byte-inside-a-string",
        list_with(raw=b'{"id":"1800000000000061","prompt":"a\x00b"}'),
        "ok",
        invalid=1,
        reasons=("raw control character",),
    ),
    Fault(
        "queue-500-whose-body-holds-a-nul-byte",
        on(QUEUE, Reply(500, b"java.lang.IllegalStateException: \x00 in frame", {})),
        "failed",
        ("500 from", "/mj/task/queue"),
    ),
    Fault(
        "queue-an-object-holding-a-lone-surrogate",
        on(QUEUE, Reply(body=b'{"error": "bad \\ud800 thing"}')),
        "failed",
        ("/mj/task/queue", "not a list of tasks"),
    ),
    Fault(
        # The queue's one item is an array nested 99,999 deep: set aside unread below the
        # depth limit, counted invalid; the rest of the pass goes on.
        "queue-nested-100000-deep",
        on(QUEUE, Reply(body=nested(100_000))),
        "ok",
        invalid=1,
        reasons=("nested deeper than 65 levels",),
        fresh=False,
    ),
    Fault(
        "list-number-with-5000-digits",
        list_with(raw=b'{"id":"1800000000000070","seed":' + b"7" * 5000 + b"}"),
        "ok",
        invalid=1,
        reasons=("more digits than can be read",),
    ),
    Fault(
        "queue-number-with-5000-digits",
        queue_with(raw=b'{"id":"1800000000000070","seed":' + b"7" * 5000 + b"}"),
        "ok",
        invalid=1,
        reasons=("more digits than can be read",),
    ),
    # --- Records: odd items in a good answer ---
    Fault(
        "list-null-items",
        list_with(None, None),
        "ok",
        invalid=2,
        reasons=("not a JSON object but null",),
    ),
    Fault(
        "list-items-without-an-id",
        list_with(
            {"status": "SUCCESS", "prompt": "no id"},
            {"id": None, "status": "SUCCESS"},
            {"id": "", "status": "SUCCESS"},
        ),
        "ok",
        invalid=3,
        reasons=("has no id",),
    ),
    Fault(
        "list-items-that-are-not-objects",
        list_with(42, "1800000000000080", ["1800000000000081"], True),
        "ok",
        invalid=4,
        reasons=("a number", "a string", "an array", "a boolean"),
    ),
    Fault(
        "list-ids-that-are-not-task-ids",
        list_with(
            task("../../etc/passwd"),
            task("1" * 65),
            task("1800000000000090 OR 1=1"),
            {"id": 1.8e15, "status": "SUCCESS"},
            {"id": {"$gt": ""}, "status": "SUCCESS"},
        ),
        "ok",
        invalid=5,
        reasons=("not a proxy task id", "id is a number", "id is an object"),
    ),
    Fault(
        "list-duplicate-ids-with-different-states",
        list_with(*DUPLICATES),
        "ok",
        stored={"1800000000000010": {"status": "SUCCESS", "raw": DUPLICATES[1]}},
    ),
    Fault(
        "queue-duplicate-ids-with-different-states",
        queue_with(*reversed(DUPLICATES)),
        "ok",
        stored={"1800000000000010": {"status": "SUCCESS", "raw": DUPLICATES[1]}},
    ),
    Fault(
        "list-ids-as-numbers",
        list_with(task(NUMERIC_ID, prompt="numeric id")),
        "ok",
        stored={str(NUMERIC_ID): {"raw": task(NUMERIC_ID, prompt="numeric id")}},
    ),
    Fault(
        "list-times-as-digit-strings",
        list_with(
            task("1800000000000100", submitTime="1700000000000", finishTime=" 1700000000000")
        ),
        "ok",
        stored={"1800000000000100": {"submitted": T_1700, "finished": T_1700}},
    ),
    Fault(
        "list-times-in-seconds",
        list_with(task("1800000000000101", submitTime=1_700_000_000)),
        "ok",
        stored={"1800000000000101": {"submitted": T_1700}},
    ),
    Fault(
        "list-times-as-words-negative-or-out-of-range",
        list_with(
            task("1800000000000102", submitTime="yesterday"),
            task("1800000000000103", startTime=-1_700_000_000_000),
            task("1800000000000104", finishTime=1e20),
            task("1800000000000105", submitTime=True),
        ),
        "ok",
        invalid=4,
        reasons=("submitTime is a string", "startTime is -1700000000000", "out of range"),
    ),
    Fault(
        "list-progress-abc-and-other-words",
        list_with(task("1800000000000110", status="IN_PROGRESS", progress="abc")),
        "ok",
        stored={"1800000000000110": {"progress": "abc", "progress_pct": None}},
    ),
    Fault(
        "queue-progress-as-a-70-digit-number",
        queue_with(task("1800000000000111", status="IN_PROGRESS", progress=10**70)),
        "ok",
        invalid=None,  # stored with its text cut to the column, or counted invalid: both fine
    ),
    Fault(
        "list-an-integer-beyond-64-bits",
        list_with(task("1800000000000112", seed=2**64)),
        "ok",
        stored={"1800000000000112": {"raw": task("1800000000000112", seed=2**64)}},
    ),
    Fault(
        "list-status-and-action-never-seen-before",
        list_with(task("1800000000000120", status="QUEUED_ON_MARS", action="TELEPORT")),
        "ok",
        stored={"1800000000000120": {"status": "QUEUED_ON_MARS", "action": "TELEPORT"}},
    ),
    Fault(
        "list-status-longer-than-its-column",
        list_with(task("1800000000000121", status="S" * 65)),
        "ok",
        invalid=1,
        reasons=("status is longer than 64",),
    ),
    Fault(
        "list-wrong-types-in-known-fields",
        list_with(
            task("1800000000000122", status=["SUCCESS"]),
            task("1800000000000123", prompt={"text": "a cat"}),
            task("1800000000000124", properties="finalPrompt=Cat"),
            task("1800000000000125", progress={"value": 3}),
        ),
        "ok",
        invalid=4,
        reasons=("status is an array", "prompt is an object", "properties is a string"),
    ),
    Fault(
        "list-properties-nested-100-deep",
        list_with(task("1800000000000130", properties={"a": json.loads(nested(100))})),
        "ok",
        invalid=1,
        reasons=("nested deeper than 64",),
    ),
    Fault(
        "list-buttons-nested-5000-deep",
        list_with(raw=b'{"id":"1800000000000131","buttons":' + nested(5000) + b"}"),
        "ok",
        invalid=1,
        reasons=("buttons: nested deeper than 64 levels",),
    ),
    # Deep enough to break Python's recursion limit, depending on how deep the stack
    # already is: once, 960 levels were read by the sync and then failed the task's
    # page, and 985 failed every full pass of the source.
    Fault(
        "list-buttons-nested-960-deep",
        list_with(raw=b'{"id":"1800000000000132","buttons":' + nested(960) + b"}"),
        "ok",
        invalid=1,
        reasons=("buttons: nested deeper than 64 levels",),
    ),
    Fault(
        "list-buttons-nested-985-deep",
        list_with(raw=b'{"id":"1800000000000133","buttons":' + nested(985) + b"}"),
        "ok",
        invalid=1,
        reasons=("buttons: nested deeper than 64 levels",),
    ),
    Fault(
        "list-a-field-nested-65-deep-just-past-the-limit",
        list_with(raw=b'{"id":"1800000000000134","extra":' + nested(65) + b"}"),
        "ok",
        invalid=1,
        reasons=("extra: nested deeper than 64 levels",),
    ),
    Fault(
        "list-a-field-nested-64-deep-at-the-limit",
        list_with(raw=b'{"id":"1800000000000135","extra":' + nested(64) + b"}"),
        "ok",
        stored={"1800000000000135": {"raw": {"id": "1800000000000135", "extra": NESTED_64}}},
    ),
    Fault(
        "queue-a-record-nested-985-deep",
        queue_with(raw=b'{"id":"1800000000000136","properties":{"a":' + nested(985) + b"}}"),
        "ok",
        invalid=1,
        reasons=("properties: nested deeper than 64 levels",),
    ),
    Fault(
        "list-a-stored-task-with-buttons-nested-985-deep",
        list_replacing(
            finished_task,
            lambda ctx: raw_in(altered(ctx, finished_task, buttons="DEEP"), "DEEP", nested(985)),
        ),
        "ok",
        invalid=1,
        reasons=("buttons: nested deeper than 64 levels",),
        target=finished_task,
    ),
    Fault(
        "list-an-invalid-record-for-a-stored-task",
        lambda ctx: list_with(task(one_stored(ctx), status="SUCCESS", submitTime="soon"))(ctx),
        "ok",
        invalid=1,
        reasons=("submitTime",),
    ),
    Fault(
        "queue-nul-escapes-in-text",
        queue_with(NUL_RECORD),
        "ok",
        stored={"1800000000000030": {"prompt": "a\ufffdb", "raw": NUL_RECORD}},
    ),
    Fault(
        "list-nul-escapes-in-text",
        list_with(NUL_RECORD),
        "ok",
        stored={"1800000000000030": {"prompt": "a\ufffdb", "raw": NUL_RECORD}},
    ),
    Fault(
        "queue-a-lone-surrogate-escape",
        queue_with(raw=b'{"id":"1800000000000140","prompt":"cat \\ud800","x":{"\\udc00":1}}'),
        "ok",
        stored={
            "1800000000000140": {
                "prompt": "cat \ufffd",
                "raw": {"id": "1800000000000140", "prompt": "cat \ud800", "x": {"\udc00": 1}},
            }
        },
    ),
    Fault(
        "list-a-lone-surrogate-escape",
        list_with(raw=b'{"id":"1800000000000140","prompt":"cat \\ud800"}'),
        "ok",
        stored={"1800000000000140": {"raw": {"id": "1800000000000140", "prompt": "cat \ud800"}}},
    ),
    Fault(
        "queue-nan-and-infinity-literals",
        queue_with(
            raw=b'{"id":"1800000000000150","progress":NaN},'
            b'{"id":"1800000000000151","submitTime":Infinity},'
            b'{"id":"1800000000000152","seed":-Infinity}'
        ),
        "ok",
        invalid=3,
        reasons=("NaN is not a JSON value", "-Infinity is not a JSON value"),
    ),
    Fault(
        "queue-a-record-with-only-an-id",
        queue_with({"id": "1800000000000160"}),
        "ok",
        stored={"1800000000000160": {"status": "", "raw": {"id": "1800000000000160"}}},
    ),
    Fault(
        "queue-new-api-style-empty-strings-and-zeros",
        queue_with(task("1800000000000161", status="", finishTime=0, startTime="", failReason="")),
        "ok",
        stored={"1800000000000161": {"status": "", "finished": None, "started": None}},
    ),
    Fault(
        "list-five-thousand-null-items",
        list_with(raw=b",".join([b"null"] * 5000)),
        "ok",
        invalid=5000,
        reasons=("not a JSON object but null",),
    ),
    # --- Hostile records for tasks the mirror already holds (their rows must not move) ---
    Fault(
        "list-a-stored-task-with-status-as-an-array",
        list_replacing_with(finished_task, status=["SUCCESS"]),
        "ok",
        invalid=1,
        reasons=("status is an array",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-with-submit-time-in-letters",
        list_replacing_with(finished_task, submitTime="last tuesday"),
        "ok",
        invalid=1,
        reasons=("submitTime is a string",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-with-progress-as-an-object",
        list_replacing_with(running_task, progress={"value": 99}),
        "ok",
        invalid=1,
        reasons=("progress is an object",),
        target=running_task,
    ),
    Fault(
        "list-a-stored-task-holding-nan",
        list_replacing(
            finished_task,
            lambda ctx: raw_in(altered(ctx, finished_task, progress="@nan"), "@nan", b"NaN"),
        ),
        "ok",
        invalid=1,
        reasons=("NaN is not a JSON value",),
        target=finished_task,
    ),
    Fault(
        "queue-a-stored-task-holding-infinity",
        lambda ctx: queue_with(
            raw=raw_in(altered(ctx, running_task, startTime="@inf"), "@inf", b"Infinity")
        )(ctx),
        "ok",
        invalid=1,
        reasons=("Infinity is not a JSON value",),
        target=running_task,
    ),
    Fault(
        "list-a-stored-task-with-invalid-utf8-in-its-prompt",
        list_replacing(
            finished_task,
            lambda ctx: raw_in(altered(ctx, finished_task, prompt="@bad"), "@bad", b'"c\xff\xfe"'),
        ),
        "ok",
        invalid=1,
        reasons=("bytes that are not UTF-8",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-with-a-raw-control-character",
        list_replacing(
            running_task,
            lambda ctx: raw_in(altered(ctx, running_task, prompt="@nul"), "@nul", b'"a\x00b"'),
        ),
        "ok",
        invalid=1,
        reasons=("raw control character",),
        target=running_task,
    ),
    Fault(
        "list-a-stored-task-with-a-5000-digit-number",
        list_replacing(
            finished_task,
            lambda ctx: raw_in(altered(ctx, finished_task, seed="@big"), "@big", b"9" * 5000),
        ),
        "ok",
        invalid=1,
        reasons=("more digits than can be read",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-with-properties-nested-100-deep",
        list_replacing_with(finished_task, properties={"a": json.loads(nested(100))}),
        "ok",
        invalid=1,
        reasons=("nested deeper than 64",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-finished-task-in-an-older-state",
        list_replacing_with(finished_task, status="IN_PROGRESS", progress="40%", imageUrl=None),
        "ok",
        stale=1,
        target=finished_task,
    ),
    Fault(
        "list-a-stored-finished-task-at-a-lower-percentage",
        list_replacing_with(finished_task, progress="3%"),
        "ok",
        stale=1,
        target=finished_task,
    ),
    Fault(
        "queue-a-stored-running-task-with-an-empty-status",
        queue_aimed(running_task, status=""),
        "ok",
        stale=1,
        target=running_task,
    ),
    Fault(
        "queue-a-stored-finished-task-back-at-not-start",
        queue_aimed(finished_task, status="NOT_START", progress=None, imageUrl=None),
        "ok",
        stale=1,
        target=finished_task,
    ),
    Fault(
        "queue-a-stored-finished-task-with-a-null-status",
        queue_aimed(finished_task, status=None),
        "ok",
        stale=1,
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-twice-its-broken-twin-first",
        list_with_twin(finished_task, twin_first=True, status=4),
        "ok",
        invalid=1,
        reasons=("status is a number",),
        target=finished_task,
    ),
    Fault(
        "list-a-stored-task-twice-its-broken-twin-last",
        list_with_twin(running_task, twin_first=False, finishTime=-5),
        "ok",
        invalid=1,
        reasons=("finishTime is -5",),
        target=running_task,
    ),
    Fault(
        "queue-a-stored-task-with-a-broken-record-and-the-list-healthy",
        queue_aimed(running_task, status="S" * 65),
        "ok",
        invalid=1,
        reasons=("status is longer than 64",),
        target=running_task,
    ),
    Fault(
        "list-a-stored-task-whose-id-is-a-number",
        # The same task in the same state: a valid record, and the later of equals wins,
        # so the row now holds the record as sent (its id a number); the status stays.
        list_replacing(finished_task, lambda ctx: dumps(with_numeric_id(ctx))),
        "ok",
        target=finished_task,
        target_becomes={"status": "SUCCESS", "raw": with_numeric_id},
    ),
    Fault(
        "list-a-stored-task-whose-id-is-a-float",
        list_replacing(finished_task, stored_id_as_a_float),
        "ok",
        invalid=1,
        reasons=("id is a number",),
        target=finished_task,
        invalid_target=False,  # a float's id cannot be trusted to name the task
    ),
]
