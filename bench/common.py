"""What the bench scripts share: the searches timed, progress lines, a free port on
loopback, a fresh database."""

import socket

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
