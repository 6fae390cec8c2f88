"""The floor a sync is measured against: json.loads of the list body plus one
executemany of the same rows into a bare table with the same columns, in one
transaction, in the same database. Prints its figures as one JSON line.

    python bench/floor.py DATABASE_URL BODY_FILE
    python bench/floor.py DATABASE_URL LIST_URL   (BENCH_SECRET: the proxy's secret)

Given the list's URL, the floor fetches the same bytes from the same proxy as the sync
does, and that fetch is timed with it (issue 19's floor); given a file, only the parse
and the write are timed.
"""

import json
import os
import resource
import sys
import time
from datetime import UTC, datetime

import dj_database_url

COLUMNS = [
    "source_id",
    "task_id",
    "action",
    "status",
    "prompt",
    "prompt_en",
    "description",
    "state",
    "progress",
    "image_url",
    "fail_reason",
    "submitted",
    "started",
    "finished",
    "properties",
    "raw",
]
TEXT_TYPES = {"submitted", "started", "finished"}


def moment(ms):
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def rows(records):
    for r in records:
        yield (
            1,
            str(r["id"]),
            r.get("action") or "",
            r.get("status") or "",
            r.get("prompt") or "",
            r.get("promptEn") or "",
            r.get("description") or "",
            r.get("state") or "",
            r.get("progress") or "",
            r.get("imageUrl") or "",
            r.get("failReason") or "",
            moment(r.get("submitTime")),
            moment(r.get("startTime")),
            moment(r.get("finishTime")),
            json.dumps(r.get("properties") or {}, ensure_ascii=False),
            json.dumps(r, ensure_ascii=False),
        )


def connect(url):
    cfg = dj_database_url.parse(url)
    if cfg["ENGINE"].endswith("sqlite3"):
        import sqlite3

        conn = sqlite3.connect(cfg["NAME"], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn, "?", "TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT"
    import psycopg

    conn = psycopg.connect(
        host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname=cfg["NAME"]
    )
    conn.autocommit = True
    return conn, "%s", "TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY"


def fetch(list_url):
    import requests

    headers = {"mj-api-secret": os.getenv("BENCH_SECRET", "")}
    response = requests.get(list_url, headers=headers, timeout=600)
    response.raise_for_status()
    return response.content


def main(url, body_source):
    conn, mark, time_type, pk = connect(url)
    columns = ", ".join(
        f"{c} {time_type if c in TEXT_TYPES else ('INTEGER' if c == 'source_id' else 'TEXT')}"
        for c in COLUMNS
    )
    conn.execute("DROP TABLE IF EXISTS bench_floor")
    conn.execute(f"CREATE TABLE bench_floor (id {pk}, {columns})")
    marks = ", ".join([mark] * len(COLUMNS))
    insert = f"INSERT INTO bench_floor ({', '.join(COLUMNS)}) VALUES ({marks})"
    fetched = body_source.startswith(("http://", "https://"))
    if not fetched:
        with open(body_source, "rb") as f:
            body = f.read()

    start = time.perf_counter()
    if fetched:
        body = fetch(body_source)
    records = json.loads(body)
    cursor = conn.cursor()
    cursor.execute("BEGIN")
    cursor.executemany(insert, list(rows(records)))
    cursor.execute("COMMIT")
    seconds = time.perf_counter() - start

    conn.execute("DROP TABLE bench_floor")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": len(records), "rss_mb": rss_mb}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main(sys.argv[1], sys.argv[2])
