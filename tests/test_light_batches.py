"""The light pass asks list-by-condition for the unfinished tasks in batches of at most 200.

Real HTTP all the way: the sync talks to a small recording proxy on 127.0.0.1, which
keeps every request's method, path and body and passes it on to the simulator. The
simulator logs methods and paths (requests_log) but not bodies, and the bodies are what
these tests are about: which ids were asked for, and how many at a time.
"""

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest

from tasks.ingest.sync import ingest, sync_source
from tasks.models import SyncRun, Task
from tasks.simulator.lifecycle import MAX_LIFETIME_S

pytestmark = pytest.mark.django_db

BY_CONDITION = "/mj/task/list-by-condition"
MOST_IDS = 200  # the README's "in batches of 200", written out rather than imported
FINISHED = {"SUCCESS", "FAILURE"}
WAITING = {"NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS"}
# Not forwarded: they describe one hop (and Content-Length is recomputed below).
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


# The recording proxy


class Seen(NamedTuple):
    method: str
    path: str
    body: bytes


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.upstream = urlsplit(upstream)
        self.seen = []  # list.append is atomic: handler threads append, the test reads
        self.url = "http://{}:{}".format(*self.server_address[:2])

    def calls(self, method, path):
        return [s for s in self.seen if s.method == method and s.path == path]


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.forward("GET")

    def do_POST(self):
        self.forward("POST")

    def forward(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(Seen(method, urlsplit(self.path).path, body))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = self.server.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        try:
            conn.request(method, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()  # de-chunked by http.client
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            conn.close()


@pytest.fixture
def recorder():
    started = []

    def start(sim):
        server = Recorder(sim.url)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# Helpers


def submit_unfinished(sim, clock, n):
    """n tasks submitted just now, one a millisecond; every tenth fails later. At the
    clock's time they are all NOT_START: each needs at least 24 s to finish."""
    ids = []
    for i in range(n):
        ids.append(sim.submit(prompt=f"batch task {i}", fail=i % 10 == 0))
        clock.advance(0.001)
    assert len(set(ids)) == n
    return ids


def asked_ids(calls):
    """The ids of each list-by-condition body, as sent."""
    batches = []
    for call in calls:
        body = json.loads(call.body)
        assert set(body) == {"ids"}, body
        assert all(isinstance(i, str) for i in body["ids"]), body
        batches.append(body["ids"])
    return batches


def by_condition_in_log(sim, start):
    return [
        path
        for method, path, _ in sim.requests_log[start:]
        if method == "POST" and urlsplit(path).path == BY_CONDITION
    ]


def assert_mirrors_the_simulator(source, sim, ids, finished=True):
    """Every task holds what the simulator answers now: its record exactly (and, once the
    clock passed every task's lifetime, finished)."""
    rows = {t.task_id: t for t in Task.objects.filter(source=source)}
    assert set(rows) == set(ids)
    wrong = []
    for task_id in ids:
        task, record = rows[task_id], sim.record(task_id)
        if (
            task.status != record["status"]
            or task.progress != record["progress"]
            or json.loads(task.raw) != record
            or task.gone_since is not None
        ):
            wrong.append((task_id, task.status, record["status"]))
    assert wrong == [], f"{len(wrong)} tasks not updated from the answers, e.g. {wrong[:3]}"
    if not finished:
        return
    statuses = Counter(t.status for t in rows.values())
    assert set(statuses) == FINISHED, statuses
    # submit_unfinished fails every tenth task: i = 0, 10, 20, ...
    assert statuses["FAILURE"] == (len(ids) + 9) // 10


# novicezk: the queue holds the tasks while they run; once they finish they are in no
# queue, and only list-by-condition can tell the mirror so.


@pytest.mark.parametrize(
    ("n", "requests"),
    [
        (200, 1),  # exactly one full batch
        (201, 2),  # one id over: a second request with that one id
        (400, 2),  # two full batches, no empty third
        (450, 3),  # 200 + 200 + 50
    ],
)
def test_the_light_pass_asks_for_every_unfinished_task_once_in_batches_of_200(
    start_sim, make_source, clock, recorder, n, requests
):
    sim = start_sim("novicezk", tasks=0)
    ids = submit_unfinished(sim, clock, n)
    proxy = recorder(sim)
    source = make_source(sim, base_url=proxy.url)

    # The first pass finds them all in the queue: stored as unfinished, none asked for.
    first = sync_source(source)
    assert first.outcome == SyncRun.Outcome.OK, first.error
    assert first.created == n
    assert Task.objects.filter(source=source).unfinished().count() == n
    assert set(Task.objects.filter(source=source).values_list("status", flat=True)) <= WAITING
    assert proxy.calls("POST", BY_CONDITION) == []  # seen in the queue: not asked again

    # They all finish upstream, and so leave its queue.
    clock.advance(MAX_LIFETIME_S + 10)
    assert sim.queue_items() == []
    proxy.seen.clear()
    log_start = len(sim.requests_log)

    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    calls = proxy.calls("POST", BY_CONDITION)
    assert len(calls) == requests  # ceil(n / 200)
    assert len(by_condition_in_log(sim, log_start)) == requests  # the simulator agrees
    batches = asked_ids(calls)
    assert max(len(batch) for batch in batches) <= MOST_IDS, [len(b) for b in batches]
    asked = Counter(i for batch in batches for i in batch)
    assert set(asked) == set(ids)
    assert [i for i, times in asked.items() if times != 1] == []
    # Besides those batches, the pass asked for the queue and nothing else.
    assert [(s.method, s.path) for s in proxy.seen if s.path != BY_CONDITION] == [
        ("GET", "/mj/task/queue")
    ]
    assert (run.fetched, run.updated, run.created, run.gone) == (n, n, 0, 0)
    assert_mirrors_the_simulator(source, sim, ids)
    assert Task.objects.filter(source=source).unfinished().count() == 0


def test_a_second_light_pass_asks_for_nothing_once_all_are_finished(
    start_sim, make_source, clock, recorder
):
    sim = start_sim("novicezk", tasks=0)
    ids = submit_unfinished(sim, clock, 201)
    proxy = recorder(sim)
    source = make_source(sim, base_url=proxy.url)
    sync_source(source)
    clock.advance(MAX_LIFETIME_S + 10)
    sync_source(source)
    assert_mirrors_the_simulator(source, sim, ids)
    proxy.seen.clear()

    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert proxy.calls("POST", BY_CONDITION) == []
    assert run.fetched == 0


# trueai: no queue, and a list of the newest 100 only. The tasks that fell out of that
# list are asked for through list-by-condition; those the list just showed are not asked
# again, whether the list showed them finished or still running.


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(10, id="all-still-running"),  # moved on (SUBMITTED, IN_PROGRESS...)
        pytest.param(MAX_LIFETIME_S + 10, id="all-finished"),
    ],
)
def test_tasks_that_fell_out_of_trueais_short_list_are_asked_for_in_batches(
    start_sim, make_source, clock, recorder, later
):
    sim = start_sim("trueai", tasks=0)
    ids = submit_unfinished(sim, clock, 450)
    proxy = recorder(sim)
    source = make_source(sim, base_url=proxy.url)
    # The mirror holds all 450 as NOT_START (as it would after earlier passes).
    ingest(source, sim.all_records())
    stored = Task.objects.filter(source=source)
    assert set(stored.unfinished().values_list("status", flat=True)) == {"NOT_START"}
    assert stored.unfinished().count() == 450
    clock.advance(later)  # every task has moved on since: at least SUBMITTED
    listed = {r["id"] for r in sim.records()}
    assert len(listed) == 100
    if later == 10:
        assert len([r for r in sim.records() if r["status"] in WAITING]) >= 90
    proxy.seen.clear()

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    batches = asked_ids(proxy.calls("POST", BY_CONDITION))
    assert len(batches) == 2  # 350 ids: 200 + 150
    assert max(len(batch) for batch in batches) <= MOST_IDS, [len(b) for b in batches]
    asked = Counter(i for batch in batches for i in batch)
    assert set(asked) == set(ids) - listed
    assert [i for i, times in asked.items() if times != 1] == []
    assert (run.fetched, run.updated, run.gone) == (450, 450, 0)
    assert_mirrors_the_simulator(source, sim, ids, finished=later > MAX_LIFETIME_S)
