"""The derived columns (tasks/ingest/derive.py) of tasks stored before those columns
existed, or before derive.py learnt what it knows now: `manage.py derive_columns` and
migration 0013 run `backfill`.

It walks the table in primary-key order, a batch at a time, reading only each task's pk,
source and raw text; derives the columns from the record and writes them with one bulk
UPDATE per batch, each batch in a transaction of its own. So memory stays flat however
big the table is, PostgreSQL never holds one transaction over a million rows, and a run
that stops is resumed from the last pk it reported (`derive_columns --after PK`); running
it again from the start only writes the same values again.
"""

import json

from django.core.exceptions import FieldDoesNotExist
from django.db import connection, transaction

from tasks.db.bulk import update_by_pk
from tasks.ingest import derive
from tasks.ingest.relay_rows import is_row, task_shape

BATCH = 2000  # tasks read and written per transaction


def backfill(model, after=0, batch=BATCH, progress=None):
    """Derive the columns of every task with a pk above `after`; return (tasks, last pk).
    `model` is the Task model (a migration passes its historical one); `progress(done,
    last_pk)` is called after each batch."""
    fields = [name for name in derive.DERIVED_FIELDS if has_field(model, name)]
    table = connection.ops.quote_name(model._meta.db_table)
    sql = f"SELECT id, raw FROM {table} WHERE id > %s ORDER BY id LIMIT %s"  # noqa: S608
    done, last = 0, after
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [last, batch])
            rows = cursor.fetchall()
            if not rows:
                return done, last
            update_by_pk(model, fields, [derived_row(pk, raw, fields) for pk, raw in rows])
        done, last = done + len(rows), rows[-1][0]
        if progress:
            progress(done, last)


def derived_row(pk, raw, fields):
    values = derive.columns(parse(raw))
    return (pk, *(values[name] for name in fields))


def parse(raw):
    """The stored record in the proxy's task shape, or None when its text is no JSON (then
    every derived column is empty): a record nested too deep to decode is kept as text
    (records.py). A new-api relay's row, stored as the relay sent it, is derived from its
    task shape, as the sync derives it."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return task_shape(value) if is_row(value) else value


def has_field(model, name):
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:  # a later column, not in this migration's state yet
        return False
    return True
