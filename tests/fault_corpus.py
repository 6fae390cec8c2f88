"""Hostile and broken proxy answers for the sync, as data (tests/test_faults.py runs them).

Each `Fault` breaks one endpoint of an otherwise healthy proxy (the fault server
passes every other request through to a simulator) and says how the pass must end:
`failed` with words in its error, `ok` with so many records counted invalid and the
hostile-but-valid ones stored as described, or `either` of the two where both are
fair answers (a body that is not strict JSON may be refused whole). A case that
exposes an application bug names it in `bug`: the test is a strict xfail until fixed.
"""

import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .faultserver import Reply

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

    @property
    def good(self):
        return json.loads(self.good_body)


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


def big_list(ctx, size_mb):
    padding = task("1800000000000998", prompt="x" * (size_mb * 1024 * 1024))
    return splice(ctx.good_body, [padding])


def one_stored(ctx):
    return ctx.stored_ids[0]


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
        "queue-nested-100000-deep",
        on(QUEUE, Reply(body=nested(100_000))),
        "either",
        ("/mj/task/queue",),
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
        "either",
        ("/mj/task/list",),
        invalid=1,
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
]
