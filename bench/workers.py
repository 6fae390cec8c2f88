"""Several workers (README, "Several workers"): sources synced by one full pass each, first
by one `manage.py qcluster` with one worker process, then by three, over Redis and
PostgreSQL. Prints the wall time of each beside README's figures, then all figures as
one JSON object on the last line.

    python bench/workers.py [--database postgres://postgres@127.0.0.1:5432/mjsite_workers]
                            [--redis redis://127.0.0.1:6379/0] [--sizes 10x10000,1x100000]

Each size gets a fresh database (dropped and created, then migrated, its schedules
removed so that only the passes queued here run). The clusters, simulators and passes are
tests/test_multiworker.py's own, so this times exactly what those tests run. About three
minutes with the default sizes on two cores. (It was that file's MJ_MULTIWORKER_COMPARE
test: a timing that cannot fail is a figure.)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import recreate_postgres_database, say

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# README's figures (seconds with one cluster, with three), for comparison.
README = {(10, 10_000): (33.2, 25.7), (1, 100_000): (37.2, 30.7)}


def sizes(text):
    """ "10x10000,1x100000" -> [(10, 10000), (1, 100000)]: sources x tasks each."""
    found = []
    for item in text.split(","):
        count, _, tasks = item.strip().partition("x")
        found.append((int(count), int(tasks)))
    return found


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "Q_"))}
    env.pop("REDIS_URL", None)
    env.update(LOG_LEVEL="WARNING", **extra)
    return env


def fresh_database(url):
    from django.db import connections
    from django_q.models import Schedule

    connections.close_all()
    recreate_postgres_database(url)
    subprocess.run(
        [PY, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        env=clean_env(DATABASE_URL=url),
        check=True,
    )
    Schedule.objects.all().delete()


def measure(mw, count, tasks, log_dir):
    """Seconds from queueing a full pass of each source until all ended, by 1 and 3 clusters."""
    from tasks.models import Task

    simulators = mw.Simulators()
    clusters = mw.Clusters(log_dir, prefix="mjsite-bench")
    timings = {}
    try:
        urls = simulators(tasks, count=count)
        for workers in (1, 3):
            sources = mw.make_sources(f"w{workers}-", urls)  # each with its own SyncRuns
            group = clusters(workers)
            timings[workers] = mw.sync_all(clusters, sources, seconds=1800)
            for cluster in group:
                cluster.kill()
            runs = mw.finished_full_passes(sources)
            failed = list(runs.exclude(outcome="ok").values_list("source__name", "error"))
            if failed:
                raise SystemExit(f"passes failed: {failed}\n{clusters.logs()}")
            stored = Task.objects.filter(source__in=sources).count()
            if stored != count * tasks:
                raise SystemExit(f"{stored:,} tasks stored, not {count * tasks:,}")
    finally:
        clusters.stop()
        simulators.stop()
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        default=os.getenv("BENCH_WORKERS_URL", "postgres://postgres@127.0.0.1:5432/mjsite_workers"),
    )
    parser.add_argument("--redis", default=os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--sizes", type=sizes, default=sizes("10x10000,1x100000"))
    args = parser.parse_args()
    if not args.database.startswith("postgres"):
        raise SystemExit("several qcluster processes need PostgreSQL: --database postgres://...")

    import redis

    try:
        redis.from_url(args.redis, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"Redis at {args.redis} cannot be reached ({exc}): --redis") from exc

    sys.path.insert(0, str(ROOT))
    os.environ.update(DJANGO_SETTINGS_MODULE="mjsite.settings", DATABASE_URL=args.database)
    os.environ.update(LOG_LEVEL="WARNING")
    import django

    django.setup()
    from tests import test_multiworker as mw

    mw.REDIS_URL = args.redis  # the clusters' queue, and where this process queues
    figures = []
    with tempfile.TemporaryDirectory(prefix="mjsite-workers-") as logs:
        for count, tasks in args.sizes:
            say(f"{count} source(s) x {tasks:,} tasks: a fresh database, simulators, clusters…")
            fresh_database(args.database)
            timings = measure(mw, count, tasks, Path(logs))
            one, three = timings[1], timings[3]
            line = (
                f"{count} source(s) x {tasks:,} tasks: 1 worker {one:.1f} s, "
                f"3 workers {three:.1f} s ({one / three:.2f}x)"
            )
            if (count, tasks) in README:
                ref_one, ref_three = README[count, tasks]
                line += f"; README: {ref_one:.1f} s, {ref_three:.1f} s ({ref_one / ref_three:.2f}x)"
            say(line)
            figures.append(
                {
                    "sources": count,
                    "tasks_each": tasks,
                    "one_worker_s": one,
                    "three_workers_s": three,
                    "gain": one / three,
                }
            )
    print(json.dumps({"workers": figures}))


if __name__ == "__main__":
    main()
