"""On PostgreSQL a web request's statements are cut off after MJ_WEB_STATEMENT_TIMEOUT.

A second line behind the admin's offered-only filters: a query that would hold a web
worker for minutes (a `__regex` over every raw record did) is cancelled by the server.
The web process is the one that loads mjsite/wsgi.py, as gunicorn does; the sync and the
other commands run without a limit. Each check runs in a fresh process against the
PostgreSQL server, whichever database this run of the suite uses.
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.getenv("CI_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

PROBE = """
from django.db import connection
from django.db.utils import OperationalError
with connection.cursor() as cursor:
    cursor.execute("SHOW statement_timeout")
    print(cursor.fetchone()[0])
    try:
        cursor.execute("SELECT pg_sleep(2.5)")
        print("finished")
    except OperationalError as exc:
        print("cancelled" if "statement timeout" in str(exc) else exc)
"""


@pytest.fixture(scope="module")
def postgres():
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"no PostgreSQL at {POSTGRES_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}")
    return POSTGRES_URL


def run(code, **env):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mjsite.settings", **env}
    env.pop("MJ_WEB_PROCESS", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_web_process_cancels_a_statement_that_runs_too_long(postgres):
    shown, outcome = run(
        "import mjsite.wsgi\n" + PROBE, DATABASE_URL=postgres, MJ_WEB_STATEMENT_TIMEOUT="1"
    )
    assert (shown, outcome) == ("1s", "cancelled")


def test_the_web_default_is_thirty_seconds(postgres):
    shown, outcome = run("import mjsite.wsgi\n" + PROBE, DATABASE_URL=postgres)
    assert (shown, outcome) == ("30s", "finished")


def test_commands_and_workers_run_without_a_limit(postgres):
    shown, outcome = run(
        "import django\ndjango.setup()\n" + PROBE,
        DATABASE_URL=postgres,
        MJ_WEB_STATEMENT_TIMEOUT="1",
    )
    assert (shown, outcome) == ("0", "finished")
