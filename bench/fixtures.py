"""Fill a mirror database with N realistic tasks quickly: bulk SQL, not the sync.

    DATABASE_URL=... python bench/fixtures.py N [--unfinished-json FILE]

Rows are spread over the last 60 days with the status and action mix of a busy
proxy, Chinese and English prompts, and a raw record like a proxy's. With
--unfinished-json, the records in FILE (a JSON array) are stored too, as the
unfinished tasks a light pass must refresh.
"""

import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from tasks.ingest.records import normalise  # noqa: E402
from tasks.models import Source, Task  # noqa: E402

# All finished: the unfinished tasks of a benchmark are exactly the ones it passes in.
STATUSES = ["SUCCESS"] * 87 + ["FAILURE"] * 10 + ["CANCEL"] * 3
ACTIONS = ["IMAGINE"] * 60 + ["UPSCALE"] * 20 + ["VARIATION"] * 10 + ["DESCRIBE"] * 4
ACTIONS += ["BLEND"] * 2 + ["ZOOM"] * 2 + ["PAN"] + ["REROLL"]
WORDS_ZH = ["猫猫", "灯塔", "山水", "黄昏时的灯塔", "赛博朋克城市", "水墨画", "少女", "森林"]
WORDS_EN = ["a cat", "lighthouse at dusk", "cyberpunk city", "ink painting", "forest", "portrait"]
WORDS_EN += ["4k", "cinematic lighting", "--ar 16:9", "--v 6", "highly detailed"]
FAILS = ["Invalid Form Body", "任务超时", "[Internal Server Error] upstream", "Banned prompt"]
# 50 Discord accounts and 200 callers (a bot's chat ids in `state`), the usage and accounts
# pages' dimensions.
ACCOUNTS = [f"11181383385625{n:05d}" for n in range(50)]
CALLERS = [f"chat-{n}" for n in range(200)] + [None] * 20
BATCH = 5000
SPREAD_MS = 60 * 24 * 3600 * 1000  # tasks are spread over the last 60 days


def make_record(i, submit, rng):
    status = rng.choice(STATUSES)
    action = rng.choice(ACTIONS)
    zh = rng.choice(WORDS_ZH)
    en = " ".join(rng.sample(WORDS_EN, 3))
    task_id = f"{submit:013d}{i % 1000:03d}"
    finished = status in ("SUCCESS", "FAILURE", "CANCEL")
    start = submit + rng.randrange(2_000, 60_000)
    record = {
        "id": task_id,
        "properties": {"finalPrompt": en, "discordInstanceId": rng.choice(ACCOUNTS)},
        "action": action,
        "status": status,
        "prompt": f"{zh} {en}",
        "promptEn": en,
        "description": f"/imagine {zh}",
        "state": rng.choice(CALLERS),  # the caller, as many bots send it
        "submitTime": submit,
        "startTime": start,
        "finishTime": start + rng.randrange(20_000, 120_000) if finished else None,
        "imageUrl": f"https://cdn.discordapp.com/attachments/1/{task_id}/x.png"
        if status == "SUCCESS"
        else None,
        "progress": "100%" if status == "SUCCESS" else ("" if finished else "46%"),
        "failReason": rng.choice(FAILS) if status == "FAILURE" else None,
    }
    return record


def row_for(source_id, record, now):
    """The column values of one task row, in COLUMNS order, typed by the normaliser."""
    r = normalise(record)
    values = {
        "source_id": source_id,
        "first_seen": now,
        # Changed when submitted, as in a mirror that has kept up: a fresh fill is not
        # a burst of changes for the overview's roll-up to re-roll (tasks/reports/rollup.py).
        "last_changed": r.submitted or now,
        "last_seen": now,
        "in_queue": False,
        "gone_since": None,
        "image_state": "none",
        "image_attempts": 0,
        "properties": json.dumps(r.properties, ensure_ascii=False),
        **r.derived,
        "media": json.dumps(r.derived["media"]),
    }
    for column in COLUMNS:
        if column not in values:
            values[column] = getattr(r, column, DEFAULTS.get(column, ""))
    return [values[c] for c in COLUMNS]


FIELDS = [f for f in Task._meta.concrete_fields if f.column != "id"]
COLUMNS = [f.column for f in FIELDS]
DEFAULTS = {f.column: None for f in FIELDS if f.null}


def fill(count, extra=(), source_name="default"):
    rng = random.Random(1)
    # Oldest first, as a mirror that kept up stored them: ids follow submit times, which
    # the search index's order (tasks/db/search.py) and the roll-ups' ranges expect.
    now = timezone.now()
    now_ms = int(time.time() * 1000)
    submits = sorted(now_ms - rng.randrange(SPREAD_MS) for _ in range(count))
    source, _ = Source.objects.get_or_create(
        name=source_name, defaults={"base_url": "http://127.0.0.1:9"}
    )
    started = time.perf_counter()
    made = 0
    pending = [row_for(source.pk, rec, now) for rec in extra]
    seen = set()
    for i in range(count):
        record = make_record(i, submits[i], rng)
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        pending.append(row_for(source.pk, record, now))
        if len(pending) >= BATCH:
            made += write(pending)
            pending = []
            if made % 100_000 < BATCH:
                print(f"  {made:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    made += write(pending)
    with connection.cursor() as cursor:
        # As autovacuum does in a live mirror: statistics, and on PostgreSQL the visibility
        # map that index-only scans (the search's, the roll-ups') need.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return source, made


def write(rows):
    """Plain SQL: COPY on PostgreSQL, executemany on SQLite (Django stores UTC text there)."""
    if not rows:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY tasks_task ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(COLUMNS))
            sql = f"INSERT INTO tasks_task ({', '.join(COLUMNS)}) VALUES ({marks})"
            cursor.executemany(sql, [[sqlite_value(v) for v in row] for row in rows])
    return len(rows)


def sqlite_value(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


if __name__ == "__main__":
    n = int(sys.argv[1])
    extra = []
    if "--unfinished-json" in sys.argv:
        extra = json.loads(Path(sys.argv[sys.argv.index("--unfinished-json") + 1]).read_text())
    t0 = time.perf_counter()
    _, made = fill(n, extra)
    print(f"fixture: {made:,} tasks in {time.perf_counter() - t0:.1f} s")
