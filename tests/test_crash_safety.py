"""A sync pass killed at any moment leaves the database consistent, and the next one finishes.

`manage.py sync_tasks --full` runs as a real process against the test database and
a simulator with 16,000 tasks (a few seconds of work), and is SIGKILLed at different
moments: nothing half-written may remain, the dead pass keeps its lease until it
runs out, and the next pass mirrors the proxy completely.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tasks import records
from tasks.models import Source, SyncRun, Task, TaskEvent
from tasks.simulator import ManualClock, Simulator
from tasks.sync import sync_source

from .faultserver import Reply, wait_for

ROOT = Path(__file__).resolve().parent.parent
TASKS = 16_000  # a full pass from scratch: a few seconds on either database


# Processes that share the test database


def database_url():
    """The URL of the database this test runs on, for processes started from it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}"


def manage(*args, **env):
    """Start `manage.py <args>` in its own process group, on the test database."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MJ_PROXY_URL", "Q_SYNC")}
    environ.update(DATABASE_URL=database_url(), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
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
