"""Passes, workers and hooks at the same time: one pass per source, no lost or stale writes.

- Two `sync_tasks --full` processes and a `qcluster` against one PostgreSQL database and a
  simulator whose tasks keep changing (PostgreSQL only: SQLite has one writer at a time).
- Hook callbacks for the same tasks interleaved with sync passes (both databases).
- Two writers creating the same new task, one behind the other (a forced interleaving).
- The property the lease is for, read from SyncRun: one pass per source at a time.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from tasks.ingest import records, sync
from tasks.ingest.sync import claim_lease, ingest, release_lease, sync_source
from tasks.models import Source, SyncRun, Task, TaskEvent
from tasks.simulator import ManualClock, RealClock, Simulator
from tests.faultserver import wait_for
from tests.test_crash_safety import database_url, kill, manage

ROOT = Path(__file__).resolve().parent.parent
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
needs_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason=(
        "needs PostgreSQL: SQLite takes one writer at a time, so processes writing at once "
        "only queue up there; run with DATABASE_URL=postgres://... (CI runs both databases)"
    ),
)


def rank_of(status, progress):
    return records.state_rank(status, records.parse_progress(progress)[1])


def assert_no_duplicates():
    dupes = Task.objects.values("source", "task_id").annotate(n=Count("id")).filter(n__gt=1)
    assert not dupes.exists(), list(dupes[:5])


def assert_timelines_never_go_back():
    """Each task's events, in the order they were written, never move backwards."""
    last = {}
    for task_id, status, progress in TaskEvent.objects.order_by("task_id", "pk").values_list(
        "task_id", "status", "progress"
    ):
        rank = rank_of(status, progress)
        if task_id in last:
            assert not records.is_stale(rank, last[task_id]), (task_id, status, progress)
        last[task_id] = rank


def assert_one_pass_at_a_time(source):
    runs = list(
        SyncRun.objects.filter(source=source, outcome__in=["ok", "failed"])
        .order_by("started")
        .values_list("started", "ended", "kind")
    )
    assert all(ended is not None for _, ended, _ in runs)
    for (_, ended, _), (started, _, _) in zip(runs, runs[1:], strict=False):
        assert started >= ended, "two passes of one source overlapped"
    return runs


# Two sync_tasks and a qcluster at once


class QCluster:
    """`manage.py qcluster` on the ORM broker of the test database, under a name of its own."""

    def __init__(self, log_path):
        self.name = f"mjsite-conc-{uuid.uuid4().hex[:8]}"
        self.log = log_path
        with log_path.open("w") as out:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "Q_"))}
            env.pop("REDIS_URL", None)  # the ORM broker: the queue lives in the test database
            env.update(
                DATABASE_URL=database_url(),
                DJANGO_SECRET_KEY=settings.SECRET_KEY,  # queued tasks are signed with it
                Q_CLUSTER_NAME=self.name,
                Q_WORKERS="2",
                LOG_LEVEL="INFO",
            )
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def queue(self, source, full):
        """Queue one pass the way the schedules do (sync.enqueue_passes)."""
        from django_q.brokers.orm import ORM
        from django_q.conf import Conf
        from django_q.tasks import async_task

        # Tasks are signed with the cluster's name as salt: sign as that cluster would.
        with mock.patch.object(Conf, "PREFIX", self.name):
            async_task(
                "tasks.ingest.sync.sync_source_by_id",
                source.pk,
                full,
                broker=ORM(list_key=self.name),
                sync=False,
            )

    def queued(self):
        from django_q.models import OrmQ

        return OrmQ.objects.filter(key=self.name).count()

    def stop(self):
        # One SIGTERM (a second can deadlock it, DJANGO-Q2-NOTES 8), then the whole group.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        kill(self.proc)

    def tail(self):
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def changing_sim():
    # Real time, lifecycles ten times faster (a task lives at most ~8 s), a new task every 0.1 s.
    sim = Simulator(
        "novicezk",
        secret="s3cret",
        tasks=5000,
        seed=21,
        clock=RealClock(),
        speed=10,
        new_task_every=0.1,
    )
    sim.start(host="127.0.0.1", port=0)
    yield sim
    sim.stop()


@needs_postgresql
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_sync_commands_and_a_worker_at_once_lose_nothing_and_never_go_back(
    changing_sim, tmp_path
):
    sim = changing_sim
    source = Source.objects.create(
        name="busy", base_url=sim.url, auth_header="mj-api-secret", secret=sim.secret
    )
    cluster = QCluster(tmp_path / "qcluster.log")
    commands = []
    try:
        cluster.queue(source, full=True)
        for _ in range(2):
            commands.append(manage("sync_tasks", "--full", "--source", "busy", "--wait", "0"))
        # More passes while the first ones run: most are skipped, the later ones run.
        # Queued until several have run, however slow the machine (within 150 s).
        queued, deadline = 1, time.monotonic() + 150
        while queued < 12 or (
            SyncRun.objects.filter(source=source, outcome="ok").count() < 4
            and time.monotonic() < deadline
        ):
            time.sleep(1.5)
            cluster.queue(source, full=queued % 3 == 0)
            queued += 1
        for command in commands:
            try:
                command.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"sync_tasks still running after 120 s: {kill(command)}")
        done = wait_for(
            lambda: (
                cluster.queued() == 0
                and SyncRun.objects.filter(source=source).count() == queued + len(commands)
                and not SyncRun.objects.filter(outcome="running").exists()
            ),
            timeout=120,
            interval=0.5,
        )
        assert done, f"the worker did not finish its passes:\n{cluster.tail()}"
    finally:
        for command in commands:
            kill(command)
        cluster.stop()

    runs = assert_one_pass_at_a_time(source)
    outcomes = dict(SyncRun.objects.values_list("outcome").annotate(n=Count("id")))
    print(f"passes: {outcomes}; {Task.objects.count()} tasks")  # shown with -s
    assert len(runs) >= 3, outcomes  # the first pass and later ones really ran
    assert outcomes.get("skipped", 0) >= 1, outcomes  # and some met a running pass
    assert SyncRun.objects.filter(outcome="failed").count() == 0, list(
        SyncRun.objects.values_list("error", flat=True)
    )
    assert_no_duplicates()
    assert_timelines_never_go_back()

    # Quiet: time stops, no new tasks. The mirror is behind the proxy, never ahead.
    sim.clock = ManualClock(sim.clock.now_ms())
    time.sleep(0.3)  # the activity thread's last tick
    for task_id, status, progress in Task.objects.values_list("task_id", "status", "progress"):
        upstream = sim.record(task_id)
        behind = records.is_stale(
            rank_of(upstream.get("status"), upstream.get("progress")), rank_of(status, progress)
        )
        assert not behind, f"{task_id}: mirror {status} {progress} is ahead of the proxy"

    final = sync_source(source, full=True)

    assert final.outcome == SyncRun.Outcome.OK, final.error
    rows = dict(Task.objects.filter(source=source).values_list("task_id", "raw"))
    expected = sim.all_records()
    assert len(rows) == len(expected) > 5000
    for record in expected:
        assert json.loads(rows[record["id"]]) == record
    assert_no_duplicates()
    assert_timelines_never_go_back()


# Hooks and passes at once


FINAL = {
    "action": "IMAGINE",
    "status": "SUCCESS",
    "prompt": "黄昏时的灯塔",
    "progress": "100%",
    "submitTime": 1_700_000_000_000,
    "startTime": 1_700_000_030_000,
    "finishTime": 1_700_000_090_000,
    "imageUrl": "https://cdn.discordapp.com/attachments/1/2/done.png",
}
STEPS = [
    {"status": "NOT_START", "progress": None, "finishTime": None, "imageUrl": None},
    {"status": "SUBMITTED", "progress": "0%", "finishTime": None, "imageUrl": None},
    {"status": "IN_PROGRESS", "progress": "15%", "finishTime": None, "imageUrl": None},
    {"status": "IN_PROGRESS", "progress": "62%", "finishTime": None},
    {"status": "IN_PROGRESS", "progress": "93%", "finishTime": None},
    {},
]


def versions_of(task_id):
    return [{"id": task_id, **FINAL, **step} for step in STEPS]


def in_threads(*jobs, timeout=60):
    """Run callables in threads, started together; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    errors = []

    def run(job):
        try:
            barrier.wait(timeout=10)
            job()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True)
def test_hooks_racing_sync_passes_leave_every_task_at_its_furthest_state(start_sim, make_source):
    sim = start_sim("novicezk")
    source = make_source(sim)
    ids = [f"17000000000{n:05d}" for n in range(4)]
    for task_id in ids:
        sim.put(versions_of(task_id)[-1])  # the proxy already has them finished
        ingest(source, [versions_of(task_id)[1]], via="hook")  # the mirror saw them submitted
    hooks = [v for task_id in ids for v in versions_of(task_id) for _ in range(2)]
    random.Random(5).shuffle(hooks)
    url = f"/hooks/mj/{source.hook_token}/"

    def poster(share):
        def post():
            client = Client()
            for record in share:
                body = json.dumps(record, ensure_ascii=False)
                response = client.post(url, body, content_type="application/json")
                assert response.status_code == 200, response.content

        return post

    def passes():
        for full in (False, True, False, False, True):
            assert sync_source(source, full=full, wait_seconds=30).outcome == "ok"

    in_threads(*(poster(hooks[i::5]) for i in range(5)), passes)

    for task_id in ids:
        task = Task.objects.get(source=source, task_id=task_id)
        assert (task.status, task.progress) == ("SUCCESS", "100%")
        assert json.loads(task.raw) == versions_of(task_id)[-1]
    assert_no_duplicates()
    assert_timelines_never_go_back()
    assert_one_pass_at_a_time(source)


@pytest.mark.django_db(transaction=True)
def test_two_writers_creating_one_task_keep_the_furthest_state(make_source, start_sim, request):
    # Forced interleaving: writer A has read "no such task" and is about to insert
    # SUBMITTED when writer B inserts SUCCESS and commits; then A goes on.
    source = make_source(start_sim("novicezk"))
    behind, ahead = versions_of("1700000000000901")[1], versions_of("1700000000000901")[-1]
    a_has_read, a_may_go, b_done = threading.Event(), threading.Event(), threading.Event()
    real_new_row = sync.new_row

    def new_row(*args, **kwargs):
        if threading.current_thread().name == "writer-a":
            a_has_read.set()
            a_may_go.wait(10)
        return real_new_row(*args, **kwargs)

    def writer(record, name, done=None):
        def run():
            try:
                ingest(source, [record], via="hook")
            finally:
                if done:
                    done.set()
                connection.close()

        return threading.Thread(target=run, name=name)

    with mock.patch.object(sync, "new_row", new_row):
        a = writer(behind, "writer-a")
        a.start()
        assert a_has_read.wait(10)
        b = writer(ahead, "writer-b", done=b_done)
        b.start()
        b_done.wait(2)  # PostgreSQL: B commits now; SQLite: B waits for A's write lock
        a_may_go.set()
        a.join(20)
        b.join(20)

    task = Task.objects.get(source=source, task_id="1700000000000901")
    assert task.status == "SUCCESS"
    assert json.loads(task.raw) == ahead


@pytest.mark.django_db(transaction=True)
def test_a_pass_that_waited_for_the_lease_starts_when_it_got_it(start_sim, make_source):
    sim = start_sim("novicezk", tasks=5)
    source = make_source(sim)
    assert claim_lease(source, "another pass")
    result = {}

    def waiting_pass():
        try:
            result["run"] = sync_source(source, wait_seconds=10)
        finally:
            connection.close()

    thread = threading.Thread(target=waiting_pass)
    thread.start()
    time.sleep(1.5)
    released = timezone.now()
    release_lease(source, "another pass")
    thread.join(20)

    run = result["run"]
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.started >= released
