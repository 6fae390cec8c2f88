"""Passes, workers and hooks at the same time: one pass per source, no lost or stale writes.

- Two `sync_tasks --full` processes and a `qcluster` against one PostgreSQL database and a
  simulator whose tasks keep changing (PostgreSQL only: SQLite has one writer at a time).
- Hook callbacks for the same tasks interleaved with sync passes (both databases).
- Two writers creating the same new task, one behind the other (a forced interleaving).
- The property the lease is for, read from SyncRun: one pass per source at a time.

Threads are tests.threads.Racer: what a thread raised fails the test, and each thread's
result says what it did.
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
from tests.threads import Racer, SleepWatch, join_all, reached

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
        # One SIGTERM (a second soon after can deadlock it, django-q2 issue 346), then the
        # whole group.
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


def in_threads(*jobs):
    """Run callables in threads, started together; return their results in order, or
    raise the first error (after every thread has ended)."""
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait(timeout=10)
        return job()

    threads = [Racer(run, job, name=f"job-{i}") for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    return join_all(threads)


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
            return len(share)

        return post

    def passes():
        return [
            sync_source(source, full=full, wait_seconds=30)
            for full in (False, True, False, False, True)
        ]

    *posted, runs = in_threads(*(poster(hooks[i::5]) for i in range(5)), passes)

    assert sum(posted) == len(hooks)  # every poster delivered its whole share
    assert [(r.kind, r.outcome) for r in runs] == [
        ("light", "ok"),
        ("full", "ok"),
        ("light", "ok"),
        ("light", "ok"),
        ("full", "ok"),
    ], [r.error for r in runs]

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
    a_has_read, a_may_go, b_begins = threading.Event(), threading.Event(), threading.Event()
    real_new_row = sync.new_row

    def new_row(*args, **kwargs):
        if threading.current_thread().name == "writer-a" and not a_has_read.is_set():
            a_has_read.set()
            assert a_may_go.wait(60), "writer A was never let go"
        return real_new_row(*args, **kwargs)

    def note_begin(execute, sql, params, many, context):
        if sql.startswith("BEGIN"):
            b_begins.set()  # SQLite: B asks for the write lock, which A holds
        return execute(sql, params, many, context)

    def writer_b():
        with connection.execute_wrapper(note_begin):
            return ingest(source, [ahead], via="hook")

    a = Racer(ingest, source, [behind], via="hook", name="writer-a")
    b = Racer(writer_b, name="writer-b")
    started = []
    with mock.patch.object(sync, "new_row", new_row):
        try:
            a.start()
            started.append(a)
            assert reached(a_has_read.is_set, a), "writer A never got to its insert"
            b.start()
            started.append(b)
            if ON_POSTGRESQL:
                # A holds no lock on a row that does not exist yet: B inserts and commits.
                assert reached(lambda: not b.is_alive()), "writer B waited for writer A"
            else:
                # SQLite has one writer at a time: B waits for A's transaction.
                assert reached(b_begins.is_set, b), "writer B never asked for the write lock"
        finally:
            a_may_go.set()
            results = join_all(started)
    (a_counts, _), (b_counts, _) = results

    def outcome(counts):
        return {n: getattr(counts, n) for n in ("created", "updated", "unchanged", "stale")}

    if ON_POSTGRESQL:
        # A's insert met B's row: A read the batch again and found its record behind.
        assert outcome(b_counts) == {"created": 1, "updated": 0, "unchanged": 0, "stale": 0}
        assert outcome(a_counts) == {"created": 0, "updated": 0, "unchanged": 0, "stale": 1}
    else:
        # B came after A's commit and moved the task forward.
        assert outcome(a_counts) == {"created": 1, "updated": 0, "unchanged": 0, "stale": 0}
        assert outcome(b_counts) == {"created": 0, "updated": 1, "unchanged": 0, "stale": 0}
    task = Task.objects.get(source=source, task_id="1700000000000901")
    assert task.status == "SUCCESS"
    assert json.loads(task.raw) == ahead
    assert_no_duplicates()
    assert_timelines_never_go_back()


@pytest.mark.django_db(transaction=True)
def test_a_pass_that_waited_for_the_lease_starts_when_it_got_it(
    start_sim, make_source, monkeypatch
):
    sim = start_sim("novicezk", tasks=5)
    source = make_source(sim)
    assert claim_lease(source, "another pass")
    naps = SleepWatch()
    monkeypatch.setattr(sync, "time", naps)
    thread = Racer(sync_source, source, wait_seconds=30, name="waiting-pass")

    thread.start()
    try:
        # The pass has found the lease taken and sleeps before its next try.
        waited = reached(naps.began.is_set, thread)
    finally:
        released = timezone.now()
        release_lease(source, "another pass")
        run = thread.join()

    assert waited, "the pass never waited for the lease"
    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.started >= released
    assert run.created == Task.objects.filter(source=source).count() > 0  # it did its work
