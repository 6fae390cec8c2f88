"""How many notify-hook callbacks per second mjsite takes: gunicorn on loopback, a
fresh database, keep-alive connections POSTing task records the way a proxy does
(each push a newer state of one of many tasks). Bounded in time; it stops by itself.

    python bench/hook_load.py [--database postgres://postgres@127.0.0.1:5432/mjsite_hooks]
                              [--seconds 20] [--connections 8] [--tasks 2000]

Prints callbacks per second, latency percentiles and failures (anything but a 200).
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import free_port, recreate_postgres_database

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
STATES = [("NOT_START", None), ("SUBMITTED", "0%"), ("IN_PROGRESS", "15%")]
STATES += [("IN_PROGRESS", f"{p}%") for p in (31, 46, 62, 78, 93)] + [("SUCCESS", "100%")]


def reset_database(url):
    if url.startswith("postgres"):
        recreate_postgres_database(url)
    env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="WARNING")
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = (
        "from tasks.models import Source;"
        "s, _ = Source.objects.get_or_create(name='pushy', defaults={'base_url': 'http://127.0.0.1:9'});"
        "print(s.hook_token)"
    )
    out = subprocess.run(
        [PY, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return env, out.strip().splitlines()[-1]


def record(task_id, step):
    status, progress = STATES[min(step, len(STATES) - 1)]
    return {
        "id": task_id,
        "action": "IMAGINE",
        "status": status,
        "prompt": "黄昏时的灯塔 lighthouse at dusk",
        "description": "/imagine 黄昏时的灯塔",
        "submitTime": 1764400000000,
        "progress": progress,
        "properties": {"discordInstanceId": "1118138338562560102"},
    }


def pusher(port, path, ids, deadline, results, lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, failures, step = [], 0, 0
    while time.monotonic() < deadline:
        for task_id in ids:
            if time.monotonic() >= deadline:
                break
            body = json.dumps(record(task_id, step), ensure_ascii=False).encode()
            start = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            latencies.append(time.perf_counter() - start)
            failures += not ok
        step += 1
    with lock:
        results["latencies"].extend(latencies)
        results["failures"] += failures


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/mjsite_hooks")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    args = parser.parse_args()

    env, token = reset_database(args.database)
    port = free_port()
    web = subprocess.Popen(
        [PY, "-m", "gunicorn", "mjsite.wsgi", "-b", f"127.0.0.1:{port}"]
        + ["--workers", str(args.web_workers), "--threads", "4", "--no-control-socket"]
        + ["--log-level", "warning"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        path = f"/hooks/mj/{token}/"
        ids = [f"{1764400000000 + i:013d}{i % 1000:03d}" for i in range(args.tasks)]
        per = [ids[i :: args.connections] for i in range(args.connections)]
        results, lock = {"latencies": [], "failures": 0}, threading.Lock()
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=pusher, args=(port, path, chunk, deadline, results, lock))
            for chunk in per
        ]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
    count = len(results["latencies"])
    figures = {
        "database": args.database.split("://")[0],
        "callbacks": count,
        "per_second": count / elapsed,
        "p50_ms": percentile(results["latencies"], 0.50),
        "p99_ms": percentile(results["latencies"], 0.99),
        "failed": results["failures"],
        "connections": args.connections,
        "web_workers": args.web_workers,
        "seconds": elapsed,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
