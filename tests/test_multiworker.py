"""Several `manage.py qcluster` processes at once, over Redis and one PostgreSQL database,
syncing real simulators: the work is shared between the clusters, each source has one
pass at a time, every task is stored exactly once, and a worker killed mid-pass over
100,000 tasks is taken over by another cluster, which completes the work (issue 8).

Passes are put on the queue by the schedules' own functions (tasks.ingest.sync.full_pass and
light_pass, which async_task tasks.ingest.sync.sync_source_by_id per source), or by that
async_task itself for one source, not by waiting for the scheduler's 30 s tick; the
schedules are removed for the test so that they add no passes of their own. A SyncRun
names its worker ("host:pid"); django-q2's workers are children of a qcluster process,
which runs in a session of its own, so the pid's process group tells the cluster.

On SQLite these tests are skipped: several processes writing at once is PostgreSQL's
job (CI runs them in its PostgreSQL pass). Under CI, a Redis that cannot be reached fails
them instead.

How much three workers gain over one is a figure, not a test: bench/workers.py times it
with the Clusters and Simulators below (README, "Several workers").
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tasks.ingest import sync
from tasks.models import FINISHED_STATUSES, Source, SyncRun, Task
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "multi-s3cret"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def backends():
    if connection.vendor != "postgresql":
        pytest.skip(
            "several qcluster processes need PostgreSQL (SQLite has one writer at a time): "
            "run with DATABASE_URL=postgres://...; CI runs these in its PostgreSQL pass"
        )
    try:
        redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} cannot be reached ({exc}); set REDIS_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from django_q.models import Schedule

    Schedule.objects.all().delete()  # only the passes the test queues


def database_url():
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    """One qcluster process group, started in its own session like mjsite-worker.service."""

    def __init__(self, name, log_dir, lease_seconds=None, workers=1):
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "LOG_", "Q_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="mjsite.settings",
            DJANGO_SECRET_KEY=settings.SECRET_KEY,  # tasks are signed with it
            DATABASE_URL=database_url(),
            REDIS_URL=REDIS_URL,
            Q_CLUSTER_NAME=name,
            Q_WORKERS=str(workers),
            LOG_LEVEL="INFO",  # django-q2 says "running." at INFO
        )
        if lease_seconds:
            # A short lease, so a killed pass frees its source within the test.
            env["MJ_SYNC_LEASE_SECONDS"] = str(lease_seconds)
        cmd = [PY, "manage.py", "qcluster"]
        self.log = log_dir / f"qcluster-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, seconds=60):
        deadline = time.monotonic() + seconds
        while "running." not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"qcluster did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the main process and every child
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        # Reaping the main process is not enough: a child may not have been scheduled to
        # die yet, and a pusher still blocked in Redis BLPOP would take (and lose) the
        # next task queued. Wait until no process of the group is alive.
        deadline = time.monotonic() + 30
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # and for Redis to notice the closed connections


def proc_stat(stat):
    """(state, process group) from a /proc/<pid>/stat file; None once the process is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2])


def group_alive(pgid):
    """Whether any process in the group is still running (zombies have closed their sockets)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        found = proc_stat(stat)
        if found and found[1] == pgid and found[0] not in ("Z", "X"):
            return True
    return False


def cluster_of(worker, group):
    """The cluster of `group` whose process group holds a SyncRun's worker ("host:pid")."""
    host, _, pid = worker.rpartition(":")
    assert host == socket.gethostname(), f"{worker}: not a process of this machine"
    found = proc_stat(Path("/proc") / pid / "stat")
    assert found, f"{worker}: no such process (any more)"
    owners = [c for c in group if c.proc.pid == found[1]]
    assert owners, f"{worker}: in process group {found[1]}, none of the test's clusters"
    return owners[0]


class Clusters:
    """qcluster processes sharing one queue on Redis, named for this run alone.
    clusters(count, **kwargs) starts count more and returns them once they run."""

    def __init__(self, log_dir, prefix="mjsite-test"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.log_dir = log_dir
        self.started = []

    def __call__(self, count=1, **kwargs):
        new = [Cluster(self.name, self.log_dir, **kwargs) for _ in range(count)]
        self.started.extend(new)
        return [c.wait_ready() for c in new]

    def logs(self):
        return "\n".join(c.log.read_text()[-2000:] for c in self.started)

    def stop(self):
        for cluster in self.started:
            cluster.kill()
        redis.from_url(REDIS_URL).delete(f"django_q:{self.name}:q")


@pytest.fixture
def clusters(backends, tmp_path):
    started = Clusters(tmp_path)
    yield started
    started.stop()


class Simulators:
    """Simulators in processes of their own (`manage.py mj_simulator`), so that serving
    the lists takes nothing from the test process. simulators(tasks, count) starts count
    more, each with its own seed, and returns their URLs."""

    def __init__(self):
        self.started = []

    def __call__(self, tasks, count=1):
        procs = []
        for i in range(count):
            procs.append(
                subprocess.Popen(
                    [PY, "manage.py", "mj_simulator", "--port", "0", "--tasks", str(tasks)]
                    + ["--secret", SECRET, "--seed", str(100 + len(self.started) + i)]
                    + ["--new-task-every", "0"],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        self.started.extend(procs)
        return [p.stdout.readline().rsplit(" on ", 1)[1].strip() for p in procs]

    def stop(self):
        for proc in self.started:
            proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def simulators():
    started = Simulators()
    yield started
    started.stop()


@contextmanager
def on_queue_of(cluster_name):
    """django-q2's async_task, in this process, puts tasks on the test clusters' Redis queue."""
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf

    broker = Redis(list_key=cluster_name)
    broker.connection = redis.from_url(REDIS_URL)
    # Tasks are signed with the cluster's name as salt: sign as that cluster would.
    with (
        mock.patch.object(Conf, "PREFIX", cluster_name),
        mock.patch.object(Conf, "SYNC", False),  # queued, never run here
        mock.patch("django_q.tasks.get_broker", lambda *args, **kwargs: broker),
    ):
        yield


def queue(cluster_name, source_id, full=True):
    """Queue one pass of one source as the schedules do (async_task of sync_source_by_id)."""
    from django_q.tasks import async_task

    with on_queue_of(cluster_name):
        async_task("tasks.ingest.sync.sync_source_by_id", source_id, full)


def schedule_fires(cluster_name, func):
    """What a schedule does when it fires: tasks.ingest.sync.full_pass or light_pass, which queue
    one pass per enabled source for the clusters to share."""
    with on_queue_of(cluster_name):
        func()


def make_sources(prefix, urls):
    return [
        Source.objects.create(name=f"{prefix}{i}", base_url=url, secret=SECRET, kind="novicezk")
        for i, url in enumerate(urls)
    ]


def upstream_ids(url):
    answer = requests.get(f"{url}/mj/task/list", headers={"mj-api-secret": SECRET}, timeout=120)
    answer.raise_for_status()
    return {str(item["id"]) for item in answer.json()}


def wait_until(done, seconds, clusters, what):
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not done after {seconds} s; the clusters said:\n{clusters.logs()}")
        time.sleep(0.5)


def finished_full_passes(sources):
    return SyncRun.objects.filter(
        source__in=sources, kind="full", outcome__in=["ok", "failed"], ended__isnull=False
    )


def sync_all(clusters, sources, seconds, by_schedule=False):
    """Queue a full pass of every source (by_schedule: as the full pass's schedule does,
    for every enabled source); return the wall time until all ended."""
    started = time.monotonic()
    if by_schedule:
        schedule_fires(clusters.name, sync.full_pass)
    for source in [] if by_schedule else sources:
        queue(clusters.name, source.pk)
    wait_until(
        lambda: finished_full_passes(sources).count() >= len(sources),
        seconds,
        clusters,
        f"full passes of {len(sources)} sources",
    )
    return time.monotonic() - started


def assert_one_pass_at_a_time(source):
    runs = list(
        SyncRun.objects.filter(source=source)
        .exclude(outcome="skipped")
        .exclude(ended__isnull=True)
        .order_by("started")
        .values_list("started", "ended")
    )
    for (_, ended), (started, _) in zip(runs, runs[1:], strict=False):
        assert started >= ended, f"{source.name}: two passes overlapped"


def assert_mirrored_exactly_once(source, url):
    expected = upstream_ids(url)
    stored = list(Task.objects.filter(source=source).values_list("task_id", flat=True))
    assert len(stored) == len(set(stored))
    assert set(stored) == expected
    doubled = (
        Task.objects.filter(source=source)
        .values("source", "task_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    assert not doubled.exists(), list(doubled[:5])


def assert_raw_as_served(source, url, sample):
    """Task.raw is the exact text the simulator serves, for a random sample of finished
    tasks (unfinished ones keep moving upstream after the pass)."""
    tasks = Task.objects.filter(source=source, status__in=FINISHED_STATUSES).order_by("?")
    checked = 0
    with requests.Session() as session:
        session.headers["mj-api-secret"] = SECRET
        for task_id, raw in tasks.values_list("task_id", "raw")[:sample]:
            served = session.get(f"{url}/mj/task/{quote(task_id, safe='')}/fetch", timeout=30)
            served.raise_for_status()
            assert raw == served.text.strip(), task_id
            checked += 1
    assert checked == sample


def test_three_workers_share_ten_sources_and_store_every_task_exactly_once(clusters, simulators):
    urls = simulators(10_000, count=10)
    sources = make_sources("multi", urls)
    group = clusters(3)

    took = sync_all(clusters, sources, seconds=360, by_schedule=True)

    runs = finished_full_passes(sources)
    assert sorted(runs.values_list("outcome", flat=True)) == ["ok"] * 10, list(
        runs.values_list("source__name", "error")
    )
    # The work was shared: the passes ran in more than one of the clusters.
    per_cluster = Counter(
        group.index(cluster_of(worker, group)) for worker in runs.values_list("worker", flat=True)
    )
    assert len(per_cluster) > 1, f"all ten passes ran in one cluster: {per_cluster}"
    for source, url in zip(sources, urls, strict=True):
        assert_mirrored_exactly_once(source, url)
    assert Task.objects.filter(source__in=sources).count() == 100_000
    shares = ", ".join(str(per_cluster[i]) for i in range(len(group)))
    print(f"\n3 workers, 10 sources x 10,000 tasks: {took:.1f} s; passes per cluster: {shares}")

    # Three full passes of one source queued at once: the lease lets one run at a time
    # (a full pass waits for it, up to sync.FULL_PASS_WAITS; one that waited longer
    # would be recorded as skipped), and no two ever overlap.
    busy = sources[0]
    for _ in range(3):
        queue(clusters.name, busy.pk)
    wait_until(
        lambda: SyncRun.objects.filter(source=busy).exclude(outcome="running").count() >= 4,
        120,
        clusters,
        "three queued passes",
    )
    later = SyncRun.objects.filter(source=busy).order_by("started")[1:]
    outcomes = sorted(run.outcome for run in later)
    assert "ok" in outcomes and set(outcomes) <= {"ok", "skipped"}, outcomes
    for source in sources:
        assert_one_pass_at_a_time(source)
    assert_mirrored_exactly_once(busy, urls[0])


def test_a_worker_killed_mid_pass_over_100k_tasks_is_taken_over_by_another(clusters, simulators):
    lease = 15  # a short lease, so the dead pass frees the source within the test
    (url,) = simulators(100_000)
    (source,) = make_sources("big", [url])
    group = clusters(3, lease_seconds=lease)
    started = time.monotonic()

    schedule_fires(clusters.name, sync.full_pass)
    wait_until(
        lambda: Task.objects.filter(source=source).count() >= 10_000,
        300,
        clusters,
        "the first 10,000 tasks",
    )
    cut = SyncRun.objects.get(source=source)
    holder = cluster_of(cut.worker, group)
    dead_owner = Source.objects.get(pk=source.pk).lease_owner
    holder.kill()  # SIGKILL to the whole process group of the lease holder, mid-pass
    killed = time.monotonic()
    survivors = [c for c in group if c is not holder]
    at_kill = set(Task.objects.filter(source=source).values_list("task_id", flat=True))
    cut.refresh_from_db()
    assert cut.kind == "full" and cut.outcome == "running" and cut.ended is None
    assert 10_000 <= len(at_kill) < 100_000, "the pass ended before the kill: nothing to take over"

    # The dead pass still holds the source: a light pass queued now is skipped, not doubled.
    schedule_fires(clusters.name, sync.light_pass)
    wait_until(
        lambda: SyncRun.objects.filter(source=source, kind="light", outcome="skipped").exists(),
        60,
        clusters,
        "the light pass queued under the dead lease",
    )
    source.refresh_from_db()
    assert source.lease_owner == dead_owner and source.lease_until > timezone.now()

    # The next full pass waits for the lease to run out, takes the source over from the
    # dead pass and finishes the work.
    schedule_fires(clusters.name, sync.full_pass)
    later = SyncRun.objects.filter(
        source=source, kind="full", pk__gt=cut.pk, outcome__in=["ok", "failed"]
    )
    wait_until(later.exists, 300, clusters, "the full pass that takes over")
    took = time.monotonic() - started
    done = later.get()
    assert done.outcome == "ok", done.error
    assert done.worker != cut.worker and cluster_of(done.worker, group) in survivors
    cut.refresh_from_db()  # closed by the pass that took the source over
    assert cut.outcome == "failed" and cut.ended is not None and "interrupted" in cut.error
    assert cut.ended <= done.started

    # Every task exactly once, as served; what the killed pass wrote was kept, and the
    # pass that took over created only the rest.
    assert Task.objects.filter(source=source).count() == 100_000
    assert_mirrored_exactly_once(source, url)
    assert_raw_as_served(source, url, sample=300)
    assert done.created == 100_000 - len(at_kill)
    assert at_kill <= set(Task.objects.filter(source=source).values_list("task_id", flat=True))
    assert_one_pass_at_a_time(source)
    assert all(c.proc.poll() is None for c in survivors)
    print(
        f"\n3 workers, 1 source x 100,000 tasks, lease holder killed after {len(at_kill):,} "
        f"tasks at {killed - started:.1f} s: taken over and completed at {took:.1f} s "
        f"(the takeover pass itself {(done.ended - done.started).total_seconds():.1f} s)"
    )
