"""A sync pass killed at any moment leaves the database consistent, and the next one finishes.

`manage.py sync_tasks --full` runs as a real process against the test database and
a simulator with 16,000 tasks (a few seconds of work), and is SIGKILLed at different
moments: nothing half-written may remain, the dead pass keeps its lease until it
runs out, and the next pass mirrors the proxy completely.

On PostgreSQL one more test proves that kills land inside an open write transaction:
the pass's connection carries an application_name, the test watches its backend in
pg_stat_activity and kills it while it copies tasks or events (a transaction id held,
begun before the current statement), then asks pg_xact_status whether that
transaction was aborted, and checks that only whole batches remain.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tasks.ingest import records
from tasks.ingest.sync import BATCH, sync_source
from tasks.models import Source, SyncRun, Task, TaskEvent
from tasks.simulator import ManualClock, Simulator
from tests.faultserver import Reply, wait_for

ROOT = Path(__file__).resolve().parent.parent
TASKS = 16_000  # a full pass from scratch: a few seconds on either database


# Processes that share the test database


def database_url(application_name=None):
    """The URL of the database this test runs on, for processes started from it.

    On PostgreSQL, application_name names the process's connections (dj-database-url
    passes it to psycopg), so pg_stat_activity tells its backend from the others.
    """
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    query = f"?application_name={quote(application_name, safe='')}" if application_name else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}{query}"


def manage(*args, application_name=None, **env):
    """Start `manage.py <args>` in its own process group, on the test database."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MJ_PROXY_URL", "Q_SYNC")}
    environ.update(
        DATABASE_URL=database_url(application_name), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING"
    )
    environ.update(env)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killed whole, children included
    )


def kill(process, sig=signal.SIGKILL):
    """Signal a process's whole group; reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        return process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()


def assert_consistent():
    """Nothing half-written: one row per task, each raw is JSON with its hash, each has events."""
    duplicates = (
        Task.objects.values("source", "task_id").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    assert duplicates == 0
    for raw, digest in Task.objects.values_list("raw", "raw_hash").iterator(chunk_size=2000):
        assert isinstance(json.loads(raw), dict)
        assert digest == records.raw_hash(raw)
    # A task and its first event are written in one transaction.
    assert not Task.objects.filter(events__isnull=True).exists()
    assert not TaskEvent.objects.exclude(task__in=Task.objects.all()).exists()


def assert_mirrors(source, sim):
    rows = dict(Task.objects.filter(source=source).values_list("task_id", "raw"))
    expected = sim.expected
    assert len(rows) == len(expected)
    for record in expected:
        assert json.loads(rows[record["id"]]) == record
    assert not Task.objects.filter(source=source, gone_since__isnull=False).exists()


# The moments a pass dies


def after(seconds):
    def moment(source):
        time.sleep(seconds)
        return f"{seconds} s after the start"

    return moment


def once_stored(count):
    def moment(source):
        assert wait_for(lambda: Task.objects.filter(source=source).count() >= count, timeout=60)
        return f"with {Task.objects.filter(source=source).count()} tasks stored"

    return moment


MOMENTS = {
    "0.3s-after-the-start": after(0.3),  # Django still starting
    "1s-after-the-start": after(1),  # around the lease and the queue
    "2s-after-the-start": after(2),  # downloading the list, or its first batch
    "halfway-through-the-list": once_stored(TASKS // 2),
    "before-the-last-batch": once_stored(TASKS - 1000),  # batches of 1,000
}


@pytest.fixture(scope="module")
def big_sim():
    # Read-only for the whole module: a frozen clock, no new tasks.
    sim = Simulator("novicezk", secret="s3cret", tasks=TASKS, seed=11, clock=ManualClock())
    sim.start(host="127.0.0.1", port=0)
    sim.expected = sim.all_records()
    yield sim
    sim.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_pass_killed_midway_leaves_a_consistent_mirror_that_the_next_pass_completes(
    big_sim, moment
):
    source = Source.objects.create(
        name="big", base_url=big_sim.url, auth_header="mj-api-secret", secret=big_sim.secret
    )
    process = manage("sync_tasks", "--full", "--source", "big", "--wait", "0")
    try:
        when = MOMENTS[moment](source)
        assert process.poll() is None, f"the pass ended before it could be killed: {kill(process)}"
    finally:
        kill(process)
    assert process.returncode == -signal.SIGKILL
    print(f"killed {when}: {Task.objects.count()} tasks stored")  # shown with -s

    assert_consistent()
    source.refresh_from_db()
    runs = SyncRun.objects.filter(source=source)
    if source.lease_owner:
        # The dead pass holds its lease; the next pass must wait it out.
        assert source.lease_until > timezone.now() + timedelta(seconds=200), when
        assert runs.get().outcome == SyncRun.Outcome.RUNNING
        assert sync_source(source, full=True).outcome == SyncRun.Outcome.SKIPPED
    else:
        assert not Task.objects.exists(), f"tasks written without a lease, {when}"

    # What waiting five minutes would do.
    Source.objects.filter(pk=source.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.invalid == run.stale == 0
    assert_consistent()
    assert_mirrors(source, big_sim)
    source.refresh_from_db()
    assert source.lease_owner == "" and source.lease_until is None


@pytest.mark.django_db(transaction=True)
def test_the_run_of_a_killed_pass_is_closed_when_its_lease_is_taken_over(
    start_sim, make_source, fault_server
):
    sim = start_sim("novicezk", tasks=50)
    source = make_source(sim, base_url=fault_server.url)
    fault_server.upstream = sim.url
    fault_server.route(
        "GET", "/mj/task/list", Reply(body=b"[" + b" " * 99 + b"]", stall_after=1, stall=60)
    )
    process = manage("sync_tasks", "--full", "--source", source.name, "--wait", "0")
    try:
        # Stuck reading the list: certainly inside the pass, holding the lease.
        assert wait_for(lambda: len(fault_server.requests_to("/mj/task/list")) == 1, timeout=30)
    finally:
        kill(process)
    del fault_server.routes[("GET", "/mj/task/list")]
    Source.objects.filter(pk=source.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK

    dead = SyncRun.objects.filter(source=source).order_by("started").first()
    assert dead.outcome == SyncRun.Outcome.FAILED
    assert dead.ended is not None and dead.error


# Killed inside an open write transaction (PostgreSQL, where another session can see it)

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
# A statement of the sync's write transaction (bulk_sql): COPY or INSERT of tasks or
# their events, or an UPDATE of tasks; pg_stat_activity shows its first 1 kB.
WRITING = re.compile(r'^\s*(COPY|INSERT\s+INTO|UPDATE)\s+"tasks_task(event)?"\s', re.IGNORECASE)
# Where each kill aims: the first write transaction with at least so many tasks committed
# before it, caught copying tasks, copying their events, or between two statements.
KILL_ROUNDS = [
    (0, "tasks"),
    (TASKS // 4, "events"),
    (TASKS // 2, "between statements"),
    (3 * TASKS // 4, "events"),
    (TASKS - BATCH, "tasks"),  # the last batch
]
MISSES = 2  # write transactions let pass without the moment aimed at, then any will do
AIMS = {
    "tasks": lambda b: b["state"] == "active" and '"tasks_task" ' in b["query"],
    "events": lambda b: b["state"] == "active" and '"tasks_taskevent"' in b["query"],
    "between statements": lambda b: b["state"] == "idle in transaction",
}


def proxy_ids(sim, path, in_submit_order=False):
    response = requests.get(sim.url + path, headers={"mj-api-secret": sim.secret}, timeout=30)
    response.raise_for_status()
    records = response.json()
    if in_submit_order:
        records.sort(key=lambda record: record["submitTime"])
    return [record["id"] for record in records]


def committed_counts(sim):
    """Every task count a pass from scratch can leave committed: nothing, the queue's
    transaction, then the queue plus each further batch of the list (which the pass takes
    oldest first)."""
    queued = set(proxy_ids(sim, "/mj/task/queue"))
    listed = proxy_ids(sim, "/mj/task/list", in_submit_order=True)
    counts = {0}
    for batches in range(math.ceil(len(listed) / BATCH) + 1):
        counts.add(len(queued.union(listed[: batches * BATCH])))
    return counts


def backend_of(application_name):
    """The sync process's backend, as pg_stat_activity shows it now (None: no backend)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, xact_start, query_start, backend_xid::text, query "
            "FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        rows = cursor.fetchall()
    assert len(rows) <= 1, f"more than one backend named {application_name}: {rows}"
    if not rows:
        return None
    pid, state, xact_start, query_start, xid, query = rows[0]
    return {
        "pid": pid,
        "state": state,
        "xact_start": xact_start,
        "query_start": query_start,
        "xid": xid,
        "query": query or "",
    }


def is_writing(backend):
    """Inside an explicit transaction (begun before its current statement) that holds a
    transaction id (it has written), on a write into tasks or their events."""
    return (
        backend is not None
        and backend["state"] in ("active", "idle in transaction")
        and backend["xact_start"] is not None
        and backend["query_start"] is not None
        and backend["xact_start"] < backend["query_start"]
        and backend["xid"] is not None
        and WRITING.match(backend["query"]) is not None
    )


def about_to_commit(backend):
    # The events go in last: between their statement and the COMMIT there is no time.
    return backend["state"] == "idle in transaction" and '"tasks_taskevent"' in backend["query"]


def xact_status(xid):
    """pg_xact_status of a 32-bit backend_xid: its 64-bit id from the current epoch."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        xmax = int(cursor.fetchone()[0])
        full = (xmax >> 32 << 32) | int(xid)
        if full >= xmax:
            full -= 1 << 32  # the xid is from before the last wraparound
        cursor.execute("SELECT pg_xact_status(%s::xid8)", [str(full)])
        return cursor.fetchone()[0]


def kill_inside_a_write(process, application_name, source, at_least, aim, timeout=120):
    """Poll pg_stat_activity until the process's backend is writing inside its
    transaction with at least `at_least` tasks committed, then SIGKILL the process.

    The kill aims at one moment of the transaction (AIMS); after MISSES write
    transactions passed without it, any moment of the next one will do.
    Returns (the backend as seen when aimed at, and as last seen before the kill, in the
    same transaction; the tasks committed before that transaction).
    The count is read between two looks at the backend that show the same open
    transaction: every transaction before it had committed, and it had not.
    """
    deadline = time.monotonic() + timeout
    stored = Task.objects.filter(source=source)
    armed, missed = False, set()
    while time.monotonic() < deadline and process.poll() is None:
        if not armed:
            armed = stored.count() >= at_least
            if not armed:
                time.sleep(0.02)
                continue
        seen = backend_of(application_name)
        if not is_writing(seen):
            continue  # no sleep: some moments aimed at last a millisecond or two
        if not AIMS[aim](seen) and len(missed - {seen["xid"]}) < MISSES:
            missed.add(seen["xid"])
            continue
        committed = stored.count()
        again = backend_of(application_name)
        if (
            is_writing(again)
            and (again["pid"], again["xid"]) == (seen["pid"], seen["xid"])
            and not about_to_commit(again)
        ):
            os.killpg(process.pid, signal.SIGKILL)
            return seen, again, committed
    out, err = kill(process)
    pytest.fail(
        f"never saw the pass writing inside a transaction with {at_least}+ tasks stored "
        f"(exit {process.returncode}): {out[-500:]} {err[-2000:]}"
    )


def kill_once(source, name, at_least, aim, boundaries):
    """Start a full pass, SIGKILL it inside a write transaction, check what is left;
    True when the kill landed before that transaction committed."""
    # What waiting out the last dead pass's lease would do.
    Source.objects.filter(pk=source.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    process = manage(
        "sync_tasks", "--full", "--source", "big", "--wait", "0", application_name=name
    )
    try:
        seen, backend, committed = kill_inside_a_write(process, name, source, at_least, aim)
    finally:
        kill(process)
    assert process.returncode == -signal.SIGKILL
    # The server sees its client gone and ends the backend, and the transaction with it.
    assert wait_for(lambda: backend_of(name) is None, timeout=30), name
    status = xact_status(backend["xid"])
    stored = Task.objects.filter(source=source).count()
    print(
        f"{name}: aimed at {aim}: seen {seen['state']} on {seen['query'][:30]!r}, killed "
        f"{backend['state']} on {backend['query'][:30]!r}; transaction {backend['xid']} "
        f"{status}; {committed} tasks committed before it, {stored} now"
    )  # shown with -s
    assert status in ("aborted", "committed"), status
    if status == "aborted":
        assert stored == committed, "rows of the killed transaction remain"
    else:
        assert stored > committed, "a committed batch of new tasks left no rows"
    assert stored in boundaries, f"{stored} tasks: not a whole number of batches"
    assert TaskEvent.objects.count() == stored, "an event without its task, or the reverse"
    assert_consistent()
    source.refresh_from_db()
    assert source.lease_owner, "the killed pass wrote without holding the lease"
    assert SyncRun.objects.filter(source=source).latest("started").outcome == "running"
    return status == "aborted"


@pytest.mark.slow
@pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason=(
        "needs PostgreSQL: only there can another session see a pass inside its write "
        "transaction (pg_stat_activity); run with DATABASE_URL=postgres://... (CI runs both)"
    ),
)
@pytest.mark.django_db(transaction=True)
def test_a_pass_killed_inside_its_write_transaction_leaves_no_partial_batch(big_sim):
    source = Source.objects.create(
        name="big", base_url=big_sim.url, auth_header="mj-api-secret", secret=big_sim.secret
    )
    boundaries = committed_counts(big_sim)
    landed, kills = 0, 0
    for round_, (at_least, aim) in enumerate(KILL_ROUNDS):
        # A kill can still come after the COMMIT it aimed at (seen "idle in transaction"
        # after its last COPY): then the next batch is tried, up to three times.
        for attempt in range(3):
            kills += 1
            name = f"mjsite-crash-{os.getpid()}-{round_}-{attempt}"
            if kill_once(source, name, at_least, aim, boundaries):
                landed += 1
                break
        else:
            pytest.fail(f"no kill landed inside a write transaction ({aim}) past {at_least} tasks")

    print(f"{landed} of {kills} kills landed inside an open write transaction")  # -s
    stored_before = Task.objects.filter(source=source).count()

    Source.objects.filter(pk=source.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.invalid == run.stale == 0
    assert (run.created, run.updated) == (TASKS - stored_before, 0)
    assert_consistent()
    assert_mirrors(source, big_sim)
    assert TaskEvent.objects.count() == TASKS
    # Every killed pass's run was closed as interrupted by the pass after it.
    dead = SyncRun.objects.filter(source=source).exclude(pk=run.pk)
    assert dead.count() == kills
    assert set(dead.values_list("outcome", flat=True)) == {SyncRun.Outcome.FAILED}
