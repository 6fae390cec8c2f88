"""Several `manage.py qcluster` processes at once, over Redis and one PostgreSQL database,
syncing real simulators: the work is shared, each source has one pass at a time, every
task is stored exactly once, and a worker killed mid-pass is taken over by another.

Passes are put on the queue the way the schedules do (async_task of
tasks.sync.sync_source_by_id), not by waiting for the scheduler's 30 s tick; the
schedules are removed for the test so that they add no passes of their own.

On SQLite these tests are skipped: several processes writing at once is PostgreSQL's
job. With CI=true, a Redis that cannot be reached fails them instead.

MJ_MULTIWORKER_COMPARE=1 also times one worker against three (the figures are printed;
that takes several minutes, so it is not part of the normal run).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from tasks.models import Source, SyncRun, Task

from .conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "multi-s3cret"
COMPARE = os.getenv("MJ_MULTIWORKER_COMPARE", "").lower() in ("1", "true", "yes")

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


def group_alive(pgid):
    """Whether any process in the group is still running (zombies have closed their sockets)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            return True
    return False


@pytest.fixture
def clusters(backends, tmp_path):
    name = f"mjsite-test-{uuid.uuid4().hex[:10]}"
    started = []

    def start(count=1, **kwargs):
        new = [Cluster(name, tmp_path, **kwargs) for _ in range(count)]
        started.extend(new)
        return [c.wait_ready() for c in new]

    start.name = name
    start.logs = lambda: "\n".join(c.log.read_text()[-2000:] for c in started)
    yield start
    for cluster in started:
        cluster.kill()
    redis.from_url(REDIS_URL).delete(f"django_q:{name}:q")


@pytest.fixture
def simulators():
    """Simulators in processes of their own (`manage.py mj_simulator`), so that serving
    the lists takes nothing from the test process."""
    started = []

    def start(tasks, count=1):
        procs = []
        for i in range(count):
            procs.append(
                subprocess.Popen(
                    [PY, "manage.py", "mj_simulator", "--port", "0", "--tasks", str(tasks)]
                    + ["--secret", SECRET, "--seed", str(100 + len(started) + i)]
                    + ["--new-task-every", "0"],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        started.extend(procs)
        return [p.stdout.readline().rsplit(" on ", 1)[1].strip() for p in procs]

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def queue(cluster_name, source_id, full=True):
    """Queue one pass the way the schedules do, on the test clusters' Redis queue."""
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf
    from django_q.tasks import async_task

    broker = Redis(list_key=cluster_name)
    broker.connection = redis.from_url(REDIS_URL)
    # Tasks are signed with the cluster's name as salt: sign as that cluster would.
    with mock.patch.object(Conf, "PREFIX", cluster_name):
        async_task("tasks.sync.sync_source_by_id", source_id, full, broker=broker, sync=False)


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


def sync_all(clusters, sources, seconds):
    """Queue a full pass of every source; return the wall time until all ended."""
    started = time.monotonic()
    for source in sources:
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


def test_three_workers_share_ten_sources_and_store_every_task_exactly_once(clusters, simulators):
    urls = simulators(10_000, count=10)
    sources = make_sources("multi", urls)
    clusters(3)

    took = sync_all(clusters, sources, seconds=360)

    runs = finished_full_passes(sources)
    assert sorted(runs.values_list("outcome", flat=True)) == ["ok"] * 10, list(
        runs.values_list("source__name", "error")
    )
    for source, url in zip(sources, urls, strict=True):
        assert_mirrored_exactly_once(source, url)
    assert Task.objects.filter(source__in=sources).count() == 100_000
    print(f"\n3 workers, 10 sources x 10,000 tasks: {took:.1f} s")

    # Three passes of one source queued at once: the lease lets one run, the others
    # are recorded as skipped, and no two ever overlap.
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


def test_a_pass_cut_off_by_a_killed_worker_is_completed_by_another(clusters, simulators):
    lease = 15
    (url,) = simulators(10_000)
    (source,) = make_sources("killed", [url])
    (first,) = clusters(1, lease_seconds=lease)

    queue(clusters.name, source.pk)
    wait_until(
        lambda: Task.objects.filter(source=source).count() >= 2000,
        120,
        clusters,
        "the first 2,000 tasks",
    )
    (second,) = clusters(1, lease_seconds=lease)
    first.kill()  # SIGKILL to its whole process group, mid-pass
    at_kill = set(Task.objects.filter(source=source).values_list("task_id", flat=True))
    cut = SyncRun.objects.get(source=source)
    assert cut.outcome == "running" and cut.ended is None
    assert 2000 <= len(at_kill) < 10_000, "the pass ended before the kill: nothing to take over"

    # The dead pass still holds the source: a pass queued now is skipped, not doubled.
    queue(clusters.name, source.pk)
    wait_until(
        lambda: SyncRun.objects.filter(source=source, outcome="skipped").exists(),
        60,
        clusters,
        "the pass queued under the dead lease",
    )
    source.refresh_from_db()
    assert source.lease_owner and source.lease_until > timezone.now()

    # Once the lease has run out, the next pass takes the source over and finishes the work.
    wait_until(
        lambda: Source.objects.get(pk=source.pk).lease_until < timezone.now(),
        lease + 30,
        clusters,
        "the lease running out",
    )
    queue(clusters.name, source.pk)
    later = SyncRun.objects.filter(source=source, pk__gt=cut.pk, outcome__in=["ok", "failed"])
    wait_until(later.exists, 180, clusters, "the pass that takes over")
    done = later.get()
    assert done.outcome == "ok", done.error
    cut.refresh_from_db()  # closed by the pass that took the source over
    assert cut.outcome == "failed" and cut.ended is not None and "interrupted" in cut.error
    assert_mirrored_exactly_once(source, url)
    # What the killed pass wrote was kept: the pass that took over created only the rest.
    assert done.created == 10_000 - len(at_kill)
    assert at_kill <= set(Task.objects.filter(source=source).values_list("task_id", flat=True))
    assert second.proc.poll() is None


@pytest.mark.skipif(not COMPARE, reason="timing one worker against three: MJ_MULTIWORKER_COMPARE=1")
@pytest.mark.parametrize(("sources_count", "tasks_each"), [(10, 10_000), (1, 100_000)])
def test_how_much_three_workers_gain_over_one(clusters, simulators, sources_count, tasks_each):
    urls = simulators(tasks_each, count=sources_count)
    timings = {}
    for workers in (1, 3):
        sources = make_sources(f"w{workers}-", urls)  # each with its own SyncRun history
        group = clusters(workers)
        timings[workers] = sync_all(clusters, sources, seconds=1800)
        for cluster in group:
            cluster.kill()
        runs = finished_full_passes(sources)
        assert set(runs.values_list("outcome", flat=True)) == {"ok"}
        assert Task.objects.filter(source__in=sources).count() == sources_count * tasks_each
    print(
        f"\n{sources_count} source(s) x {tasks_each:,} tasks: 1 worker {timings[1]:.1f} s, "
        f"3 workers {timings[3]:.1f} s ({timings[1] / timings[3]:.2f}x)"
    )
