"""Every raw multi-row write, in plain SQL: the sync's hot path, and the roll-up's counts.

Django's bulk_create spends most of a 100,000-task import building a model
instance per row and preparing each of its 40 fields in Python (about 70% of
the pass, measured with cProfile). Here rows are plain dicts, adapted once per
column type, and each batch is one statement:
INSERT … ON CONFLICT (source_id, task_id) DO UPDATE … RETURNING id, task_id,
which SQLite (3.35+) and PostgreSQL both understand. Rows are dicts by attname, or
sequences in the order of the fields (tasks/reports/rollup.py's counts, which go in
with insert_each: one executemany a table).

On PostgreSQL, new tasks and events go in with COPY instead: a 500-row INSERT is
a long query text that psycopg parses again on every call (about a third of a
full sync's time), and COPY is the server's own fast path. The stored rows of a
batch are read through a join that always plans as unique-index lookups.
"""

import contextlib
import json
import operator
import sqlite3
from datetime import UTC

from django.db import IntegrityError, connection, models

from tasks.db import search
from tasks.models import Task, TaskEvent

MAX_ROWS = 500  # rows per statement, within SQLite's parameter limit


def fields_of(model):
    return [f for f in model._meta.concrete_fields if not f.primary_key]


TASK_FIELDS = fields_of(Task)
EVENT_FIELDS = fields_of(TaskEvent)


# Values for the columns a sync row does not set (the archive's, mostly). Fields
# with a callable default (times, properties) are always set by the sync.
TASK_DEFAULTS = {
    f.attname: f.get_default() for f in TASK_FIELDS if not (f.has_default() and callable(f.default))
}


def task_defaults():
    return dict(TASK_DEFAULTS)


def sqlite_datetime(value):
    """How Django stores an aware datetime in SQLite: naive UTC text."""
    if not value:
        return value
    if value.tzinfo is UTC:
        # The sync's times are all UTC already: the text without its "+00:00".
        return value.isoformat(" ")[:-6]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def adapter(field, vendor):
    if isinstance(field, models.DateTimeField) and vendor == "sqlite":
        return sqlite_datetime
    if isinstance(field, models.JSONField):
        return lambda v: json.dumps(v, ensure_ascii=False)
    return None


def field_list(model, fields):
    """Fields given as Field objects or by name (or attname, "source_id")."""
    return [model._meta.get_field(f) if isinstance(f, str) else f for f in fields]


def row_reader(fields, vendor, rows):
    """A function from a row to the list of its column values: a dict by attname (the
    sync's), or a sequence in the order of `fields` (decided once, by the first row).

    itemgetter takes every value in C; only the few columns that need it are adapted.
    """
    by_name = bool(rows) and isinstance(rows[0], dict)
    get = operator.itemgetter(*(f.attname for f in fields)) if by_name else tuple
    adapters = [(i, adapter(f, vendor)) for i, f in enumerate(fields)]
    adapters = [(i, adapt) for i, adapt in adapters if adapt]

    def read(row):
        values = list(get(row))
        for i, adapt in adapters:
            values[i] = adapt(values[i])
        return values

    return read


def placeholder(field, vendor):
    if vendor == "sqlite":
        return "?"  # run by statements()
    if isinstance(field, models.JSONField) and vendor == "postgresql":
        return "%s::jsonb"
    return "%s"


@contextlib.contextmanager
def statements():
    """A cursor for the statements insert_into writes: on SQLite the driver's own, which
    takes their ? marks as they are (Django's rewrites every %s of a statement's text, a
    10,000-mark insert, with a regular expression), its errors still turned into Django's."""
    with connection.cursor() as cursor:
        if connection.vendor != "sqlite":
            yield cursor
            return
        with (
            connection.wrap_database_errors,
            contextlib.closing(connection.connection.cursor()) as raw,
        ):
            yield raw


def max_parameters():
    if connection.vendor == "sqlite":
        # Django assumes 999 for every SQLite; this one's limit is often 32,766 or more.
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return connection.features.max_query_params or 65535


def insert_into(model, fields, vendor):
    """The text of an INSERT up to its VALUES, and one row's placeholders: only quoted
    model names and placeholders go into the text; values are parameters."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = "(" + ", ".join(placeholder(f, vendor) for f in fields) + ")"
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ", marks  # noqa: S608


def insert(model, fields, rows, conflict=None, update=(), returning=False):
    """INSERT rows in batches of one multi-row statement; return the RETURNING rows, if
    asked. With `conflict` (attnames of a unique constraint): ON CONFLICT DO UPDATE the
    `update` attnames, or DO NOTHING."""
    fields = field_list(model, fields)
    vendor = connection.vendor
    quote = connection.ops.quote_name
    head, marks = insert_into(model, fields, vendor)
    read = row_reader(fields, vendor, rows)
    tail = ""
    if conflict:
        by_name = {f.attname: f for f in fields}
        targets = ", ".join(quote(by_name[name].column) for name in conflict)
        sets = ", ".join(
            f"{quote(by_name[name].column)} = excluded.{quote(by_name[name].column)}"
            for name in update
        )
        action = f"DO UPDATE SET {sets}" if update else "DO NOTHING"
        tail = f" ON CONFLICT ({targets}) {action}"
    if returning:
        tail += " RETURNING " + ", ".join(quote(c) for c in returning)
    per_statement = max(1, min(MAX_ROWS, max_parameters() // len(fields)))
    result = []
    with statements() as cursor:
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            params = []
            for row in batch:
                params.extend(read(row))
            cursor.execute(head + ", ".join([marks] * len(batch)) + tail, params)
            if returning:
                result.extend(cursor.fetchall())
    return result


def create_tasks(rows):
    """Insert new task rows; return {task_id: pk}, or raise IntegrityError when another
    writer created one of them since we looked (the caller decides that batch again).

    In submit order, so that ids ascend with submit time, and with them the SQLite search
    index's keys (search.key_of), which it takes fastest in ascending order."""
    rows = sorted(rows, key=submit_order)
    if use_copy(rows):
        return copy_new_tasks(rows)
    sqlite = connection.vendor == "sqlite"
    with search.indexed_by_writer() if sqlite else contextlib.nullcontext():
        returned = insert(
            Task,
            TASK_FIELDS,
            rows,
            conflict=["source_id", "task_id"],
            returning=["id", "task_id"],
        )
    if len(returned) != len(rows):
        raise IntegrityError("a task of this batch was created by another writer meanwhile")
    pks = {task_id: pk for pk, task_id in returned}
    if sqlite:
        with statements() as cursor:
            tasks = [(pks[row["task_id"]], *search_columns(row)) for row in rows]
            search.index_new_tasks(cursor, tasks)
    return pks


def submit_order(row):
    # Tasks without submit time first: their search key is their id alone, the lowest.
    submitted = row["submitted"]
    return (submitted is not None, submitted or 0)


def search_columns(row):
    return row["submitted"], row["prompt"], row["prompt_en"], row["description"], row["fail_reason"]


def upsert_tasks(rows, update):
    """Insert or update task rows by (source, task_id); return {task_id: pk}."""
    returned = insert(
        Task,
        TASK_FIELDS,
        rows,
        conflict=["source_id", "task_id"],
        update=update,
        returning=["id", "task_id"],
    )
    return {task_id: pk for pk, task_id in returned}


def insert_events(rows):
    if use_copy(rows):
        copy(TaskEvent, EVENT_FIELDS, rows)
    else:
        insert(TaskEvent, EVENT_FIELDS, rows)


def insert_each(model, fields, rows, by_copy=True):
    """Insert rows with one single-row INSERT run for each (one executemany): a single
    statement for any number of rows, where insert() needs one per MAX_ROWS and
    bulk_create many more. No conflict handling, no RETURNING. On PostgreSQL many rows go
    in by COPY instead (the roll-ups' first rolls: a week of account hours four times
    faster, 757,000 usage rows in seconds instead of two minutes)."""
    if not rows:
        return
    if by_copy and use_copy(rows):
        copy(model, fields, rows)
        return
    fields = field_list(model, fields)
    vendor = connection.vendor
    head, marks = insert_into(model, fields, vendor)
    read = row_reader(fields, vendor, rows)
    with statements() as cursor:
        cursor.executemany(head + marks, [read(row) for row in rows])


# PostgreSQL: COPY, and reads that keep to the unique index

COPY_FROM = 20  # rows; below, one INSERT is one round trip where COPY takes two or three


def use_copy(rows):
    return connection.vendor == "postgresql" and len(rows) >= COPY_FROM


def copy_new_tasks(rows):
    """COPY new task rows with ids taken from the table's sequence first; {task_id: pk}.

    A plain COPY, not an upsert: a row another writer created meanwhile fails the
    unique constraint with IntegrityError, as create_tasks promises.
    """
    pks = next_ids(Task, len(rows))
    for row, pk in zip(rows, pks, strict=True):
        row["id"] = pk
    copy(Task, [Task._meta.pk, *TASK_FIELDS], rows, search_doc=search_vector)
    return {row["task_id"]: row["id"] for row in rows}


def search_vector(row):
    return search.postgres_vector(
        row["prompt"], row["prompt_en"], row["description"], row["fail_reason"]
    )


def next_ids(model, count):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def copy(model, fields, rows, **computed):
    """COPY rows (as insert() takes them) into a model's table, in one stream; `computed`:
    columns outside the model, by name, with the function of a row that gives its value."""
    fields = field_list(model, fields)
    quote = connection.ops.quote_name
    columns = ", ".join([quote(f.column) for f in fields] + [quote(name) for name in computed])
    read = row_reader(fields, "postgresql", rows)
    extra = list(computed.values())
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    # A raw psycopg COPY: errors are turned into Django's (IntegrityError) by hand.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(sql) as stream:
            for row in rows:
                values = read(row)
                values.extend(value_of(row) for value_of in extra)
                stream.write_row(values)


def stored_tasks(source_id, task_ids, columns, lock=False):
    """The rows of these tasks (tuples of `columns`), locked in task_id order if asked.

    Written as a join with the list of ids, so PostgreSQL looks each one up in the
    unique index even when its statistics are stale: right after a big import it
    otherwise plans "every row of the source, then filter", a whole-table scan per
    batch.
    """
    quote = connection.ops.quote_name
    names = ", ".join(quote(Task._meta.get_field(name).column) for name in columns)
    sql = (
        f"SELECT {names} FROM {quote(Task._meta.db_table)} "  # noqa: S608 (model names only)
        "WHERE (source_id, task_id) IN (SELECT %s, unnest(%s::varchar[]))"
    )
    if lock:
        sql += " ORDER BY task_id FOR UPDATE"  # one lock order: no deadlocks
    with connection.cursor() as cursor:
        cursor.execute(sql, [source_id, list(task_ids)])
        return cursor.fetchall()


def update_by_pk(model, fields, rows):
    """Set `fields` (Field objects or names) of the rows with these pks: rows are
    (pk, value, ...) in the order of `fields`. On PostgreSQL one UPDATE … FROM (VALUES …)
    per MAX_ROWS rows; on SQLite one executemany of a single-row UPDATE (no round trips
    there to save)."""
    if not rows:
        return
    fields = field_list(model, fields)
    vendor = connection.vendor
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    read = row_reader([model._meta.pk, *fields], vendor, rows)
    with connection.cursor() as cursor:
        if vendor != "postgresql":
            sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
            sql = f"UPDATE {table} SET {sets} WHERE {pk} = %s"  # noqa: S608
            cursor.executemany(sql, [[*values[1:], values[0]] for values in map(read, rows)])
            return
        typed = [model._meta.pk, *fields]
        # Cast: the columns of VALUES take no type from the table they update.
        marks = "(" + ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in typed) + ")"
        names = ", ".join(quote(f.column) for f in typed)
        sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
        for start in range(0, len(rows), MAX_ROWS):
            batch = rows[start : start + MAX_ROWS]
            values = ", ".join([marks] * len(batch))
            sql = (
                f"UPDATE {table} SET {sets} FROM (VALUES {values}) AS v ({names}) "  # noqa: S608
                f"WHERE {table}.{pk} = v.{pk}"
            )
            cursor.execute(sql, [value for row in batch for value in read(row)])
