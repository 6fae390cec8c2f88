"""Load test: the task list page and the mirror API under load while a full sync runs.

    .venv/bin/python bench/load.py [--rows 1000000] [--sync-tasks 100000] [--seconds 30]
        [--connections 4] [--db sqlite|postgresql] [--reuse]

1. A database of --rows tasks (bench/fixtures.py, in a source of their own, so the sync's
   source starts empty); --reuse keeps the one from the last run when it has them.
2. gunicorn (`mjsite.wsgi -w 2 --threads 4`) on a free loopback port, production-like
   (DEBUG off); a user logged in through the login form (session cookie) and an API
   token from `manage.py create_api_token`.
3. Phase "idle": for --seconds, bench/loadgen.py loads `/tasks/` (session) and
   `/mj/task/list?limit=100` (token) at once, each from its own process with
   --connections keep-alive connections (a closed loop: bounded, whatever the server does).
4. Phase "sync": the simulator with --sync-tasks tasks (`manage.py mj_simulator
   --new-task-every 0`) and `manage.py sync_tasks --full` with MJ_PROXY_URL pointed at it;
   the same load runs while the sync does.

Prints a table (requests/s, p50/p90/p99 latency, failed requests: must be 0) and writes
bench/load-results.json. Loopback only; every process it starts is stopped at the end.
Machines are shared and noisy: compare the phases of one run, not runs of two days.
"""

import argparse
import json
import os
import platform
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import free_port, recreate_postgres_database, say

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "load-results.json"
PY = sys.executable
GUNICORN = str(Path(PY).parent / "gunicorn")
PG_ADMIN_URL = os.getenv("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
PG_URL = os.getenv("BENCH_LOAD_PG_URL", "postgres://postgres@127.0.0.1:5432/mjsite_load")
SIM_SECRET = "load-secret"
USERNAME = "loadtest"
FIXTURE_SOURCE = "archive"  # the --rows tasks; the sync fills `default`


def wait_for_port(port, proc, what, seconds=300):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not listen on port {port} within {seconds} s")


class Database:
    def __init__(self, vendor):
        self.vendor = vendor
        self.file = DATA / "load.sqlite3"
        self.url = f"sqlite:///{self.file}" if vendor == "sqlite" else PG_URL

    def env(self, **extra):
        env = dict(os.environ, DATABASE_URL=self.url, LOG_LEVEL="WARNING")
        env.pop("REDIS_URL", None)
        env.update(extra)
        return env

    def manage(self, *args, env=None, capture=True):
        return subprocess.run(
            [PY, "manage.py", *args],
            cwd=ROOT,
            env=env or self.env(),
            check=True,
            capture_output=capture,
            text=True,
        )

    def python(self, code):
        return self.manage("shell", "-c", code).stdout

    def reset(self):
        if self.vendor == "sqlite":
            for f in DATA.glob("load.sqlite3*"):
                f.unlink()
        else:
            recreate_postgres_database(PG_URL, PG_ADMIN_URL)
        self.manage("migrate", "-v", "0")

    def fixture_rows(self):
        code = (
            "from tasks.models import Task; "
            f"print(Task.objects.filter(source__name={FIXTURE_SOURCE!r}).count())"
        )
        try:
            return int(self.python(code).strip().splitlines()[-1])
        except (subprocess.CalledProcessError, ValueError, IndexError):
            return 0

    def fill(self, rows):
        code = (
            "import sys; sys.path.insert(0, 'bench'); import fixtures; "
            f"fixtures.fill({rows}, source_name={FIXTURE_SOURCE!r})"
        )
        started = time.perf_counter()
        subprocess.run([PY, "-c", code], cwd=ROOT, env=self.env(), check=True)
        return time.perf_counter() - started

    def retire_synced_source(self):
        """A reused database: the last run's `default` source becomes history, so this
        run's sync starts from an empty source again."""
        code = (
            "from tasks.models import Source; import time; "
            "Source.objects.filter(name='default')"
            ".update(name=f'default-{int(time.time())}', enabled=False)"
        )
        self.python(code)

    def version(self):
        if self.vendor == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        code = (
            "from django.db import connection; c = connection.cursor(); "
            "c.execute('SHOW server_version'); print(c.fetchone()[0])"
        )
        return "PostgreSQL " + self.python(code).strip().splitlines()[-1]


def make_credentials(db):
    """A user with a known password (for the login form) and an API token."""
    password = secrets.token_urlsafe(16)
    db.python(
        "from django.contrib.auth.models import User; "
        f"u, _ = User.objects.get_or_create(username={USERNAME!r}); "
        f"u.set_password({password!r}); u.is_active = True; u.save()"
    )
    token = db.manage("create_api_token", USERNAME).stdout.strip().splitlines()[-1]
    return password, token


def start(cmd, env, log):
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc, seconds=30):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_in(base, password):
    """The session cookie of a real login through the login form."""
    import requests

    with requests.Session() as s:
        page = s.get(f"{base}/accounts/login/", timeout=30)
        page.raise_for_status()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = s.post(
            f"{base}/accounts/login/",
            data={"username": USERNAME, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{base}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302 or "sessionid" not in s.cookies:
            raise SystemExit(f"login failed: {response.status_code}")
        return s.cookies["sessionid"]


def check_endpoints(targets):
    """Each target answers 200 with the right thing before any load: a failure here is a
    set-up mistake, not a load figure."""
    import requests

    for name, (url, headers) in targets.items():
        response = requests.get(url, headers=headers, timeout=120, allow_redirects=False)
        if response.status_code != 200:
            raise SystemExit(f"{name}: {url} answered {response.status_code}, not 200")
        if name == "api" and not isinstance(response.json(), list):
            raise SystemExit("api: not a JSON array")
        if name == "list page" and 'class="tasks"' not in response.text:
            raise SystemExit("list page: no task table in the page")


def run_load(targets, seconds, connections):
    procs = {}
    for name, (url, headers) in targets.items():
        cmd = [PY, "bench/loadgen.py", url, "--seconds", str(seconds)]
        cmd += ["--connections", str(connections)]
        for key, value in headers.items():
            cmd += ["--header", f"{key}: {value}"]
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise SystemExit(f"the load generator for {name} failed")
        results[name] = json.loads(out)
    return results


def table(phases):
    head = f"{'phase':<6} {'endpoint':<34} {'req/s':>7} {'p50 ms':>8} {'p90 ms':>8}"
    head += f" {'p99 ms':>8} {'max ms':>8} {'requests':>9} {'failed':>7}"
    lines = [head, "-" * len(head)]
    for phase, data in phases.items():
        for name, r in data["endpoints"].items():
            label = f"{name} {data['paths'][name]}"
            lines.append(
                f"{phase:<6} {label:<34} {r['rps']:>7} {r['p50_ms']!s:>8} {r['p90_ms']!s:>8}"
                f" {r['p99_ms']!s:>8} {r['max_ms']!s:>8} {r['requests']:>9} {r['failures']:>7}"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="tasks in the database")
    parser.add_argument("--sync-tasks", type=int, default=100_000, help="tasks the sync pulls")
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase")
    parser.add_argument("--connections", type=int, default=4, help="per endpoint")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--reuse", action="store_true", help="keep a database that has --rows")
    parser.add_argument("--skip-idle", action="store_true", help="only the phase with the sync")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    db = Database(args.db)
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    say(f"load: {machine['cpus']} CPUs, load average {machine['load_average_at_start']}")

    fill_seconds = None
    if args.reuse and db.fixture_rows() >= args.rows:
        say(f"load: reusing the {args.db} database with {args.rows:,} tasks")
        db.manage("migrate", "-v", "0")  # the code may have moved on since
        db.retire_synced_source()
    else:
        say(f"load: a {args.db} database with {args.rows:,} tasks (bench/fixtures.py)…")
        db.reset()
        fill_seconds = db.fill(args.rows)
        say(f"load: filled in {fill_seconds:.0f} s")
    password, token = make_credentials(db)

    web_port, sim_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    sim_url = f"http://127.0.0.1:{sim_port}"
    web_env = db.env(
        DJANGO_DEBUG="False",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
    )
    logs = (DATA / "load-gunicorn.log").open("w"), (DATA / "load-simulator.log").open("w")
    web = sim = sync = None
    phases = {}
    try:
        web = start(
            [GUNICORN, "mjsite.wsgi", "-w", "2", "--threads", "4"]
            + ["-b", f"127.0.0.1:{web_port}", "--timeout", "120"],
            web_env,
            logs[0],
        )
        wait_for_port(web_port, web, "gunicorn")
        session = log_in(base, password)
        targets = {
            "list page": (f"{base}/tasks/", {"Cookie": f"sessionid={session}"}),
            "api": (f"{base}/mj/task/list?limit=100", {"Authorization": f"Bearer {token}"}),
        }
        paths = {name: url.removeprefix(base) for name, (url, _) in targets.items()}
        check_endpoints(targets)
        run_load(targets, 3, 1)  # warm up: imports, connections, caches

        if not args.skip_idle:
            say(f"load: phase idle, {args.seconds:.0f} s…")
            phases["idle"] = {"endpoints": run_load(targets, args.seconds, args.connections)}
            phases["idle"]["paths"] = paths

        say(f"load: the simulator with {args.sync_tasks:,} tasks…")
        sim = start(
            [PY, "manage.py", "mj_simulator", "--port", str(sim_port), "--secret", SIM_SECRET]
            + ["--tasks", str(args.sync_tasks), "--new-task-every", "0"],
            db.env(),
            logs[1],
        )
        wait_for_port(sim_port, sim, "the simulator")
        say(f"load: phase sync, {args.seconds:.0f} s of load while sync_tasks --full runs…")
        sync_env = db.env(MJ_PROXY_URL=sim_url, MJ_API_SECRET=SIM_SECRET)
        sync_started = time.monotonic()
        sync = subprocess.Popen(
            [PY, "manage.py", "sync_tasks", "--full", "--source", "default"],
            cwd=ROOT,
            env=sync_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        endpoints = run_load(targets, args.seconds, args.connections)
        load_ended = time.monotonic()
        sync_running_at_end = sync.poll() is None
        out, _ = sync.communicate(timeout=3600)
        sync_seconds = time.monotonic() - sync_started
        if sync.returncode != 0:
            raise SystemExit(f"the sync failed:\n{out}")
        overlap = min(sync_seconds, load_ended - sync_started) / (load_ended - sync_started)
        phases["sync"] = {
            "endpoints": endpoints,
            "paths": paths,
            "sync_seconds": round(sync_seconds, 1),
            "sync_summary": out.strip().splitlines()[-1],
            "sync_running_when_load_ended": sync_running_at_end,
            "share_of_load_during_sync": round(overlap, 2),
        }
    finally:
        stop(sync)
        stop(sim)
        stop(web)
        for f in logs:
            f.close()

    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "database": db.version(),
        "rows": args.rows,
        "fill_seconds": round(fill_seconds, 1) if fill_seconds else None,
        "sync_tasks": args.sync_tasks,
        "seconds_per_phase": args.seconds,
        "connections_per_endpoint": args.connections,
        "server": "gunicorn mjsite.wsgi -w 2 --threads 4 (DEBUG off)",
        "phases": phases,
    }
    say("")
    say(table(phases))
    sync = phases["sync"]
    say(
        f"\nsync: {sync['sync_summary']} ({sync['sync_seconds']} s wall; "
        f"{sync['share_of_load_during_sync']:.0%} of the load window overlapped it)"
    )
    failed = sum(r["failures"] for p in phases.values() for r in p["endpoints"].values())
    say(f"failed requests: {failed}")
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous[f"{args.db}-{args.rows}"] = result
    RESULTS.write_text(json.dumps(previous, indent=2, ensure_ascii=False) + "\n")
    say(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
