"""What the derived columns (tasks/ingest/derive.py) cost: the backfill of a big table
(`manage.py derive_columns`: time and peak RSS, at a tenth of the rows and at all of them,
to show memory stays flat; then the list's first page by each filter, with the derived
indexes and without), and a full sync with derive.columns as it is against the
same sync with derive.columns giving empty values and without the caller and version
indexes (the mirror before the columns), alternating on the same machine in one run.

    DATABASE_URL=... python bench/bench_derive.py [--rows 1000000] [--tasks 20000]
        [--rounds 3] [--skip-backfill] [--skip-sync]

Prints progress, then its figures as one JSON line. Without DATABASE_URL it uses a SQLite
file under bench/data/.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{DATA / 'derive.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from common import recreate_postgres_database, say  # noqa: E402

DERIVED_INDEXES = ("task_caller_idx", "task_version_idx")  # migration 0013's
SECRET = "bench-secret"


def reset_database():
    url = os.environ["DATABASE_URL"]
    if url.startswith("sqlite"):
        DATA.mkdir(parents=True, exist_ok=True)
        for f in DATA.glob("derive.sqlite3*"):
            f.unlink()
    else:
        recreate_postgres_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)


def fill_without_derived_columns(count):
    """bench/fixtures.py's rows with the derived columns empty, as stored before 0012."""
    import fixtures

    from tasks.ingest import derive

    empty = dict.fromkeys(derive.DERIVED_FIELDS[:9], "") | {
        "media": [],
        "is_video": False,
        "video_duration": None,
    }
    real_columns = derive.columns
    derive.columns = lambda item: dict(empty)
    try:
        fixtures.fill(count)
    finally:
        derive.columns = real_columns


def backfill_figures(rows):
    figures = {}
    for n in (rows // 10, rows):
        reset_database()
        say(f"  filling {n:,} tasks without derived columns…")
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import bench_derive as b; b.setup(); b.fill_without_derived_columns({n})",
            ],
            cwd=ROOT / "bench",
            check=True,
        )
        say(f"  derive_columns over {n:,} tasks…")
        seconds, peak_mb, out = run_watching_memory([sys.executable, "manage.py", "derive_columns"])
        say("  " + out.strip().splitlines()[-1])
        figures[n] = {"seconds": seconds, "peak_rss_mb": peak_mb}
    say(f"  the list's first page by each filter over {rows:,} tasks…")
    out = subprocess.run(
        [sys.executable, "-c", "import bench_derive as b; b.filter_figures()"],
        cwd=ROOT / "bench",
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures["filters_s"] = json.loads(out.strip().splitlines()[-1])
    return figures


def run_watching_memory(cmd):
    """(seconds, peak RSS in MB, stdout) of a command. The peak is read from /proc while it
    runs (VmHWM): a child's ru_maxrss starts at its parent's RSS when forked, and this
    process may hold a big simulator."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.2)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    return time.perf_counter() - started, peak / 1024, out


def timed_median(work, times=5):
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def filter_figures():
    """Seconds of the list's first page (50 rows) for each new filter over the backfilled
    table, given a realistic spread of values, with the derived indexes and without; and
    the facet chips' query, as it was (status, action) and as it is (with the parameters)."""
    setup()
    from django.db import connection
    from django.http import QueryDict
    from django.test import RequestFactory

    from tasks.models import Task
    from tasks.redaction import Masker
    from tasks.web import pager, views
    from tasks.web.filters import TaskFilterSet

    with connection.cursor() as cursor:
        # 5,000 callers of 200 tasks each; 5 % turbo, 10 % relax; 10 % niji; a rare version.
        cursor.execute(
            "UPDATE tasks_task SET caller = 'user' || (id % 5000), mode = CASE id % 20 "
            "WHEN 0 THEN 'turbo' WHEN 1 THEN 'relax' WHEN 2 THEN 'relax' ELSE 'fast' END, "
            "bot = CASE WHEN id % 10 = 0 THEN 'NIJI_JOURNEY' ELSE 'MID_JOURNEY' END"
        )
        cursor.execute("UPDATE tasks_task SET version = '5.2' WHERE id % 10000 = 7")
        cursor.execute("ANALYZE")
    cases = {
        "none": "",
        "mode=turbo": "mode=turbo",
        "bot=NIJI_JOURNEY": "bot=NIJI_JOURNEY",
        "ar=16:9": "ar=16:9",
        "account": "account=1118138338562560102",
        "caller=user42": "caller=user42",
        "version=5.2": "version=5.2",
    }

    def first_page(query):
        filters = TaskFilterSet(QueryDict(query), queryset=Task.objects.for_list())
        return lambda: pager.page(filters.qs, pager.DEFAULT_SORT, 50)

    figures = {f"page {name}": timed_median(first_page(q)) for name, q in cases.items()}
    request = RequestFactory().get("/tasks/")
    facets = TaskFilterSet(QueryDict(""), queryset=Task.objects.for_list())
    figures["chips, status and action"] = timed_median(
        lambda: list(
            Task.objects.order_by("-submitted", "-id").values_list("status", "action")[
                : views.FACET_SAMPLE
            ]
        )
    )
    figures["chips, with the parameters"] = timed_median(
        lambda: views.facet_counts(facets, request, Masker([]))
    )
    with connection.schema_editor() as editor:
        for index in Task._meta.indexes:
            if index.name in DERIVED_INDEXES:
                editor.remove_index(Task, index)
    for name in ("caller=user42", "version=5.2"):
        figures[f"page {name}, no index"] = timed_median(first_page(cases[name]))
    print(json.dumps(figures))


def setup():
    import django

    django.setup()


def sync_figures(tasks, rounds):
    """Seconds of a full sync of `tasks` simulator tasks into an empty mirror, `rounds`
    times each way, alternating: derive.columns as it is, and empty values without the
    derived indexes."""
    setup()
    from django.db import connection

    from tasks.ingest import derive, sync
    from tasks.models import Source, SyncRun, Task, TaskEvent
    from tasks.simulator import Simulator

    reset_database()
    sim = Simulator(flavor="trueai", secret=SECRET, tasks=tasks, seed=3, new_task_every=0)
    sim.flavor.list_cap = None  # every task in the list, as novicezk's proxy lists them
    sim.start(host="127.0.0.1", port=0)
    real_columns = derive.columns
    placeholder = {name: "" for name in derive.DERIVED_FIELDS[:9]}

    def empty_columns(item):
        media, is_video, video_duration = derive.media_of(item)
        return placeholder | {
            "media": media,
            "is_video": is_video,
            "video_duration": video_duration,
        }

    indexes = [i for i in Task._meta.indexes if i.name in DERIVED_INDEXES]
    source = Source.objects.create(
        name="bench", base_url=sim.url, secret=SECRET, auth_header="Authorization", kind="trueai"
    )
    seconds = {"before": [], "after": []}
    try:
        for _ in range(rounds):
            for way in ("before", "after"):
                TaskEvent.objects.all().delete()
                Task.objects.all().delete()
                if way == "before":
                    with connection.schema_editor() as editor:
                        for index in indexes:
                            editor.remove_index(Task, index)
                derive.columns = empty_columns if way == "before" else real_columns
                started = time.perf_counter()
                run = sync.sync_source(source, full=True)
                seconds[way].append(time.perf_counter() - started)
                assert run.outcome == SyncRun.Outcome.OK and run.created == tasks, run.summary()
                filled = Task.objects.exclude(version="").count()
                say(f"  {way}: {seconds[way][-1]:.2f} s, {filled:,} tasks with a version")
                if way == "before":
                    with connection.schema_editor() as editor:
                        for index in indexes:
                            editor.add_index(Task, index)
    finally:
        derive.columns = real_columns
        sim.stop()
    before, after = statistics.median(seconds["before"]), statistics.median(seconds["after"])
    return {
        "tasks": tasks,
        "before_s": before,
        "after_s": after,
        "ratio": after / before,
        "runs": seconds,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    args = parser.parse_args()
    results = {"database": os.environ["DATABASE_URL"].split(":")[0], "load": os.getloadavg()}
    if not args.skip_sync:
        say(f"full sync of {args.tasks:,} tasks, {args.rounds} rounds before/after…")
        results["sync"] = sync_figures(args.tasks, args.rounds)
    if not args.skip_backfill:
        say(f"backfill of {args.rows // 10:,} and {args.rows:,} tasks…")
        results["backfill"] = backfill_figures(args.rows)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
