"""A bounded HTTP load generator for bench/load.py: N keep-alive connections, each sending
GET requests one after the other to one URL on loopback for a fixed time.

    python bench/loadgen.py URL --seconds 30 --connections 4 [--header "Name: value"]...

Prints one JSON object: requests, failures (anything but a 200, or no answer), requests
per second, latency percentiles in ms. Only the standard library; it stops by itself.
"""

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

TIMEOUT = 60  # seconds for one request; a slower answer counts as failed


def worker(url, headers, deadline, out, lock):
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = None
    latencies, failures, size = [], Counter(), 0
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        start = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            failures[type(exc).__name__] += 1
            conn.close()
            conn = None
            continue
        latencies.append(time.perf_counter() - start)
        size += len(body)
        if status != 200:
            failures[f"HTTP {status}"] += 1
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    with lock:
        out["latencies"] += latencies
        out["failures"].update(failures)
        out["bytes"] += size


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return values[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    out = {"latencies": [], "failures": Counter(), "bytes": 0}
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + args.seconds
    threads = [
        threading.Thread(target=worker, args=(args.url, headers, deadline, out, lock))
        for _ in range(args.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies = out["latencies"]
    attempts = len(latencies) + sum(
        n for k, n in out["failures"].items() if not k.startswith("HTTP")
    )
    result = {
        "requests": attempts,
        "failures": sum(out["failures"].values()),
        "failure_kinds": dict(out["failures"]),
        "seconds": round(elapsed, 2),
        "rps": round(attempts / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "p90_ms": round(percentile(latencies, 90) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "mean_kb": round(out["bytes"] / len(latencies) / 1024, 1) if latencies else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
