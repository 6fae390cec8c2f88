"""`make bench`: mjsite's figures, each beside its reference, on SQLite and PostgreSQL.

Prints a table and writes bench/results.json. Machines are shared and noisy:
read the ratios, not the seconds. Options: --tasks N (default 100000),
--rows N for the million-row figures (default 1000000), --only sqlite|postgresql,
--skip-pages, --skip-archive, --skip-zip, --archive-only (figure 7 alone, about a minute),
--quick (10,000 tasks, 100,000 rows, full records, no archive or ZIP: about two minutes),
--only-sync (figures 1-3 alone), --record-size full|small (figures 1-3 for the simulator's
full records, with buttons, or its 1 KB records without; by default both).
BENCH_DATA moves bench/data (the SQLite database and the list body) elsewhere.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import SEARCHES, free_port, recreate_postgres_database, say

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.getenv("BENCH_DATA", ROOT / "bench" / "data"))
PY = sys.executable
PG_ADMIN_URL = os.getenv("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
PG_URL = os.getenv("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/mjsite_bench")
SECRET = "bench-secret"
SEARCH_NAMES = [*SEARCHES, "task_id"]

sys.path.insert(0, str(ROOT))


def run_json(script_and_args, env):
    """Run a bench script; its figures are the JSON object on its last line of output."""
    out = subprocess.run(
        [PY, *script_and_args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(cmd, env, label):
    """Run a command; return (wall seconds, peak RSS in MB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label} failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024, out


def pass_seconds(summary):
    """The pass's own time, from sync_tasks' summary line ("… in 12.3 s"), without start-up."""
    return float(summary.strip().splitlines()[-1].rsplit(" in ", 1)[1].split()[0])


class Database:
    def __init__(self, vendor):
        self.vendor = vendor
        self.url = f"sqlite:///{DATA / 'bench.sqlite3'}" if vendor == "sqlite" else PG_URL

    def env(self, **extra):
        env = dict(os.environ, DATABASE_URL=self.url, LOG_LEVEL="WARNING")
        env.update(extra)
        return env

    def reset(self):
        if self.vendor == "sqlite":
            for f in DATA.glob("bench.sqlite3*"):
                f.unlink()
        else:
            recreate_postgres_database(PG_URL, PG_ADMIN_URL)
        subprocess.run(
            [PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env(), check=True
        )


def postgres_reachable():
    try:
        import psycopg

        with psycopg.connect(
            PG_ADMIN_URL.replace("postgres://", "postgresql://"), connect_timeout=3
        ):
            return True
    except Exception:
        return False


def start_simulator(tasks, flavor="novicezk", record_size="full"):
    port = free_port()
    proc = subprocess.Popen(
        [PY, "manage.py", "mj_simulator", "--port", str(port), "--secret", SECRET]
        + ["--tasks", str(tasks), "--flavor", flavor, "--new-task-every", "0"]
        + ["--record-size", record_size],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the simulator did not start")


def sync_figures(db, sim_url, body_file, body_mb):
    """Figures 1-3: a full sync into an empty mirror, again unchanged, peak memory."""
    db.reset()
    # The floor fetches the list from the simulator as the sync does (issue 19's floor);
    # the floor from the saved body, parse and write only, is kept beside it.
    list_url = f"{sim_url}/mj/task/list"
    floor = run_json(["bench/floor.py", db.url, list_url], db.env(BENCH_SECRET=SECRET))
    floor_file = run_json(["bench/floor.py", db.url, str(body_file)], db.env())
    env = db.env(MJ_PROXY_URL=sim_url, MJ_API_SECRET=SECRET)
    cmd = [PY, "manage.py", "sync_tasks", "--full"]
    _, rss, out1 = timed(cmd, env, "first full sync")
    _, _, out2 = timed(cmd, env, "second full sync")
    first, again = pass_seconds(out1), pass_seconds(out2)
    say(f"  {out1.strip()}\n  {out2.strip()}")
    say(
        f"  floor {floor['seconds']:.1f} s with the fetch, {floor_file['seconds']:.1f} s "
        f"from the saved body (full sync {first / floor_file['seconds']:.2f}× that one)"
    )
    return {
        "floor_s": floor["seconds"],
        "floor_file_s": floor_file["seconds"],
        "full_sync_s": first,
        "full_sync_ratio": first / floor["seconds"],
        "unchanged_sync_s": again,
        "unchanged_sync_ratio": again / floor["seconds"],
        "peak_rss_mb": rss,
        "body_mb": body_mb,
        "rss_ratio": rss / body_mb,
    }


def record_size_figures(tasks, size, vendors, results):
    """Figures 1-3 for the simulator's records of one size ("full": with buttons, about
    1.9 KB; "small": novicezk-shaped, about 1 KB), on each database: {vendor: figures}."""
    say(f"starting the simulator with {tasks:,} {size} records…")
    t0 = time.perf_counter()
    sim, sim_url = start_simulator(tasks, record_size=size)
    started = time.perf_counter() - t0
    try:
        import requests

        body_file = DATA / "list.json"
        t0 = time.perf_counter()
        with (
            requests.get(
                f"{sim_url}/mj/task/list",
                headers={"mj-api-secret": SECRET},
                stream=True,
                timeout=600,
            ) as r,
            open(body_file, "wb") as f,
        ):
            shutil.copyfileobj(r.raw, f)
        transfer = time.perf_counter() - t0
        body_mb = body_file.stat().st_size / 1024 / 1024
        results[f"list_body_mb_{size}"] = body_mb
        say(
            f"  the simulator started in {started:.1f} s; "
            f"/mj/task/list: {body_mb:.0f} MB, served in {transfer:.1f} s"
        )
        figures = {}
        for vendor in vendors:
            say(f"[{vendor}] full sync of {tasks:,} {size} records against the floor…")
            figures[vendor] = sync_figures(Database(vendor), sim_url, body_file, body_mb)
        return figures
    finally:
        sim.terminate()
        sim.wait()


def light_pass_figures(db, stored_counts, unfinished=1000):
    """Figure 4: a light pass over 1,000 unfinished tasks, with more or fewer stored."""
    from tasks.simulator import ManualClock, Simulator

    results = {}
    for stored in stored_counts:
        clock = ManualClock()
        sim = Simulator(flavor="trueai", secret=SECRET, tasks=0, clock=clock, seed=3)
        sim.start(host="127.0.0.1", port=0)
        try:
            ids = [sim.submit(prompt=f"light {i}") for i in range(unfinished)]
            records = [sim.record(i) for i in ids]
            clock.advance(3600)  # by now they have all finished upstream
            extra = DATA / "unfinished.json"
            extra.write_text(json.dumps(records, ensure_ascii=False))
            db.reset()
            say(f"  filling {stored:,} tasks…")
            subprocess.run(
                [
                    PY,
                    "bench/fixtures.py",
                    str(stored - unfinished),
                    "--unfinished-json",
                    str(extra),
                ],
                cwd=ROOT,
                env=db.env(),
                check=True,
            )
            env = db.env(MJ_PROXY_URL=sim.url, MJ_API_SECRET=SECRET, MJ_AUTH_HEADER="Authorization")
            seconds, _, out = timed(
                [PY, "manage.py", "sync_tasks", "--source", "default"], env, "light pass"
            )
            say(f"  {stored:,} stored: {out.strip()}")
            results[stored] = seconds
        finally:
            sim.stop()
    return results


# Figure 7's sizes: a few hundred simulator images and a couple dozen Midjourney-sized
# ones keep it to about a minute (bench/bench_archive.py alone takes bigger ones).
ARCHIVE_ARGS = ["--tasks", "300", "--large", "24"]


def archive_figures():
    """Figure 7: images archived per second and a pass's peak memory (bench/bench_archive.py:
    its own temporary SQLite database and MEDIA_ROOT, everything on localhost)."""
    env = dict(os.environ, LOG_LEVEL="WARNING")
    return run_json(["bench/bench_archive.py", *ARCHIVE_ARGS], env)["archive"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--skip-archive", action="store_true")
    parser.add_argument("--skip-zip", action="store_true")
    parser.add_argument("--archive-only", action="store_true")
    parser.add_argument("--only-sync", action="store_true")
    parser.add_argument("--record-size", choices=["full", "small"], help="one size alone")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10,000 tasks, 100,000 rows, full records, three requests a figure, no archive "
        "or ZIP: a check before a commit, in about two minutes",
    )
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rows, args.skip_archive, args.skip_zip = 10_000, 100_000, True, True
        args.record_size = args.record_size or "full"
        os.environ["BENCH_REPEAT"] = "3"
    DATA.mkdir(parents=True, exist_ok=True)
    if args.archive_only:
        machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"
        say(f"mjsite benchmarks on {machine}\n[archive] copying images…")
        started = time.perf_counter()
        runs = archive_figures()
        print_archive(runs, time.perf_counter() - started)
        return

    vendors = ["sqlite", "postgresql"]
    if args.only:
        vendors = [args.only]
    if "postgresql" in vendors and not postgres_reachable():
        say(f"PostgreSQL not reachable at {PG_ADMIN_URL}: its figures are skipped")
        vendors.remove("postgresql")

    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"
    results = {"machine": machine, "tasks": args.tasks, "rows": args.rows, "databases": {}}
    results["quick"] = args.quick
    say(f"mjsite benchmarks on {machine}")

    sizes = [args.record_size] if args.record_size else ["full", "small"]
    for size in sizes:
        figures = record_size_figures(args.tasks, size, vendors, results)
        prefix = "" if size == "full" else "small_"
        for vendor, values in figures.items():
            results["databases"].setdefault(vendor, {}).update(
                {f"{prefix}{key}": value for key, value in values.items()}
            )
    if args.only_sync:
        print_table(results)
        return

    for vendor in vendors:
        db = Database(vendor)
        say(f"[{vendor}] light pass with 10,000 and {args.rows:,} tasks stored…")
        light = light_pass_figures(db, [10_000, args.rows])
        figures = results["databases"][vendor]
        figures["light_10k_s"] = light[10_000]
        figures["light_big_s"] = light[args.rows]
        figures["light_ratio"] = light[args.rows] / light[10_000]
        if not args.skip_pages:
            # The database still holds the light pass's args.rows tasks.
            say(f"[{vendor}] pages with {args.rows:,} tasks stored…")
            figures.update(run_json(["bench/pages.py"], db.env()))
            say(f"[{vendor}] /usage/ with {args.rows:,} tasks stored…")
            figures.update(run_json(["bench/usage.py"], db.env()))
            say(f"[{vendor}] one evaluation of every alert rule with {args.rows:,} tasks…")
            figures.update(run_json(["bench/alerts.py"], db.env()))
            # Last: it spreads the tasks over 50 Discord accounts (bench/accounts.py).
            say(f"[{vendor}] /discord-accounts/ with {args.rows:,} tasks, 50 accounts…")
            figures.update(run_json(["bench/accounts.py"], db.env()))

    archive_seconds = None
    if not args.skip_archive:
        say("[archive] copying images…")
        started = time.perf_counter()
        results["archive"] = archive_figures()
        archive_seconds = time.perf_counter() - started
    if not args.skip_zip:
        # A ZIP of 500 archived originals, streamed (bench/bench_zip.py, about 20 s).
        say("[zip] streaming a ZIP of 500 archived originals…")
        results["zip"] = run_json(["bench/bench_zip.py"], dict(os.environ))["zip"]

    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    if "archive" in results:
        print_archive(results["archive"], archive_seconds)
    if "zip" in results:
        big, small = results["zip"]["big"], results["zip"]["small"]
        say(
            f"\n8 ZIP download: {big['files']} originals, {big['zip_mb']:.0f} MB, "
            f"Python peak {big['python_peak_mb']:.1f} MB "
            f"({small['files']} originals: {small['python_peak_mb']:.1f} MB)"
        )


# The table: (label, figure, its reference measured in the same run, ratio, target).
# A target "≤ n" holds when the ratio is at most n, "≥ n" when at least n.
TABLE = [
    ("1 full sync vs floor", "full_sync_s", "floor_s", "full_sync_ratio", "≤ 2"),
    ("2 unchanged sync vs floor", "unchanged_sync_s", "floor_s", "unchanged_sync_ratio", "≤ 1"),
    ("3 peak RSS vs body (MB)", "peak_rss_mb", "body_mb", "rss_ratio", "≤ 3"),
    (
        "1 full sync, 1 KB records",
        "small_full_sync_s",
        "small_floor_s",
        "small_full_sync_ratio",
        "≤ 3",
    ),
    (
        "2 unchanged sync, 1 KB records",
        "small_unchanged_sync_s",
        "small_floor_s",
        "small_unchanged_sync_ratio",
        "≤ 1",
    ),
    (
        "3 peak RSS, 1 KB records (MB)",
        "small_peak_rss_mb",
        "small_body_mb",
        "small_rss_ratio",
        "≤ 3",
    ),
    ("4 light pass, big vs 10k", "light_big_s", "light_10k_s", "light_ratio", "≤ 1.5"),
    ("5 stock admin vs list page", "admin_first_s", "list_first_s", "list_vs_admin", "≥ 10"),
    ("5 list page 1000 vs page 1", "list_deep_s", "list_first_s", "deep_vs_first", "≤ 1.2"),
    ("6 overview vs list page", "overview_s", "list_first_s", "overview_vs_list", "≤ 2"),
    *(
        (
            f"6 search {name}",
            f"search_{name}_s",
            f"search_{name}_list_s",
            f"search_{name}_vs_list",
            "≤ 2",
        )  # fmt: skip
        for name in SEARCH_NAMES
    ),
    ("9 usage month vs list page", "usage_month_s", "usage_list_s", "usage_month_vs_list", "≤ 2"),
    ("9 usage year vs list page", "usage_year_s", "usage_list_s", "usage_year_vs_list", "≤ 2"),
    ("10 accounts page vs list", "accounts_s", "accounts_list_s", "accounts_vs_list", "≤ 2"),
    ("11 alert rules vs list page", "alerts_s", "alerts_list_s", "alerts_vs_list", "≤ 1"),
]


def met(ratio, target):
    sign, limit = target.split()
    return ratio <= float(limit) if sign == "≤" else ratio >= float(limit)


def print_table(results):
    say("")
    bodies = ", ".join(
        f"{size} records {results[f'list_body_mb_{size}']:.0f} MB"
        for size in ("full", "small")
        if f"list_body_mb_{size}" in results
    )
    say(f"machine: {results['machine']}; list bodies: {bodies}")
    say(f"{results['tasks']:,} tasks synced; {results['rows']:,} stored for figures 4-11")
    if results["quick"]:
        say("--quick: a tenth of the targets' sizes, where fixed costs weigh more: not judged")
    header = f"{'figure':34} {'database':10} {'value':>9} {'reference':>9} {'ratio':>7}  target"
    say(header)
    say("-" * len(header))
    for vendor, figures in results["databases"].items():
        for label, value_key, reference_key, ratio_key, target in TABLE:
            if value_key not in figures:
                continue
            ratio = figures[ratio_key]
            say(
                f"{label:34} {vendor:10} {figures[value_key]:>9.3f} "
                f"{figures[reference_key]:>9.3f} {ratio:>6.2f}×  {target}×"
                + ("" if results["quick"] or met(ratio, target) else "  MISSED")
            )


def print_archive(runs, seconds):
    say("")
    say(f"7 image archive: one pass per row, {seconds:.0f} s in all (bench/bench_archive.py)")
    header = f"{'workload':22} {'workers':>7} {'images':>7} {'images/s':>9} {'peak RSS':>9}"
    say(header)
    say("-" * len(header))
    for run in runs:
        workload = "simulator, 512 px" if run["workload"] == "simulator" else "2048 px PNG"
        say(
            f"{workload:22} {run['workers']:>7} {run['images']:>7} "
            f"{run['images_per_s']:>9.1f} {run['peak_rss_mb']:>6.0f} MB"
            + (f"  ({run['failed']} failed)" if run["failed"] else "")
        )


if __name__ == "__main__":
    main()
