"""What the bench scripts share: Django set up on the bench's database, one way to time
a figure, the searches timed, progress lines, a free port on loopback, a fresh database."""

import os
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.getenv("BENCH_REPEAT", "5"))  # timed runs a figure takes the median of

# Issue 19's searches, each timed as /tasks/?<query> beside the list page. The words are
# bench/fixtures.py's: each English word is in about 27% of prompts, 灯塔 in 25%.
SEARCHES = {
    "common_word": {"q": "forest"},
    "chinese_word": {"q": "灯塔"},
    "rare_word": {"q": "banned"},  # failReason "Banned prompt": 2.5% of tasks
    "no_hit": {"q": "zebra"},
    "two_prefixes": {"q": "light port"},
    "two_words": {"q": "lighthouse portrait"},  # 54,000 hits in a million
    "phrase": {"q": '"a cat"'},
    "common_filtered": {"q": "forest", "status": "FAILURE", "action": "IMAGINE"},
    "chinese_newest_week": {"q": "灯塔", "sort": "-submitted"},  # plus submitted_after below
}


def say(text):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_postgres_database(url, admin_url=None):
    """Drop and create the PostgreSQL database of `url`, connected as `admin_url`
    (by default the same server's `postgres` database)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = (admin_url or f"{base}/postgres").replace("postgres://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django():
    """Django for a bench script, on DATABASE_URL, with the test client's host allowed."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    import django

    django.setup()


def median_seconds(run, before=None):
    """The median time of run() over REPEAT calls after one warm-up call; before(), if
    given, runs untimed ahead of each call (a cache to clear, say)."""
    run()
    times = []
    for _ in range(REPEAT):
        if before:
            before()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def list_url():
    """The page figures' reference: the task list filtered by status, action and the last
    7 days, its first page."""
    from django.utils import timezone

    since = (timezone.now() - timedelta(days=7)).replace(microsecond=0)
    filters = {"status": "SUCCESS", "action": "IMAGINE", "submitted_after": since.isoformat()}
    return f"/tasks/?{urlencode(filters)}"


def get_seconds(client, url):
    """One GET through Django's test client, its whole body read (a streamed one too);
    it must answer 200."""
    start = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    if response.streaming:
        b"".join(response.streaming_content)
    return time.perf_counter() - start


def page_medians(client, urls, before=None):
    """{url: median seconds of a GET}, the urls requested in turn REPEAT times after a
    warm-up each, so that other work on the machine weighs on a figure and its reference
    alike. before: {url: a callable run untimed ahead of each of its requests}."""
    before = before or {}
    times = {url: [] for url in urls}
    for url in urls:
        get_seconds(client, url)
    for _ in range(REPEAT):
        for url in urls:
            if url in before:
                before[url]()
            times[url].append(get_seconds(client, url))
    return {url: statistics.median(t) for url, t in times.items()}
