"""What the bench scripts share: progress lines, a free port on loopback, a fresh database."""

import socket


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
