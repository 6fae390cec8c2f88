"""The text search over prompt, promptEn, description and failReason, plus the task id.

People search Chinese prompts for one- and two-character words (`猫猫`, `灯塔` inside
`黄昏时的灯塔`), which trigram indexes cannot find (a three-character floor) and which a
word tokenizer misses (a run of Chinese is one "word"). So the indexed text is first
normalised: lowercased, punctuation turned into spaces, and every CJK character made a
word of its own ("黄昏时的灯塔 at dusk" -> "黄 昏 时 的 灯 塔 at dusk"). A query is
normalised the same way and becomes a phrase of those words, so `灯塔` is the phrase
"灯 塔" and matches wherever the two characters stand side by side.

- SQLite: an FTS5 table `tasks_task_fts` (unicode61) kept in step by triggers that call
  `tasks_search_text()`, a Python function registered on every connection (`install()`),
  except for the tasks the sync creates, whose rows it writes itself (`index_new_tasks`);
  the query is an FTS5 phrase, `"灯 塔"`. Its rowid is the task's submit hour, then its
  id (`search_key`), so the index lists the newest hits first and stops at a LIMIT: a common
  word's newest page reads a few thousand hits, not all of them (TextSearch.recent).
  Prefixes of one to five characters have prefix indexes; a longer last word is looked up
  in the vocabulary and becomes "word" OR "wordier" (`fts5_query_sql`), since FTS5 would
  otherwise collect every hit of every word it begins before giving the first.
- PostgreSQL: a column `tasks_task.search_doc`, to_tsvector('simple') of the same
  normalised text computed by the SQL function `tasks_search_text()` in a trigger (or, for
  the plain texts of the tasks the sync creates, by `postgres_vector` in Python), with a
  GIN index `task_search_idx`; the query is `'灯' <-> '塔'`. Which index answers it is
  chosen per query in `search_postgresql.py`.
Both are created by migration 0003_search (the SQLite table's present layout by
0021_search_sqlite, the writers by 0024 and 0025). Whitespace-separated parts of a query
must all match (AND); a Latin word at the end of a part also matches as a prefix ("light"
finds "lighthouse"). A query that is a task id also matches that task exactly.

At a million tasks (SQLite), every kind of query answers its page and facets from a few
thousand hits at most: a query with fewer than COMMON hits reads them all and sorts them, a
commoner one reads its newest COMMON (`sqlite_search`).
"""

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models import F, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.lookups import In
from django.db.models.signals import post_migrate

from tasks.db.search_postgresql import postgresql_search

# One pattern text for Python's re and PostgreSQL's regular expressions alike, so both
# databases normalise exactly as Python does. \uXXXX escapes only: no locale classes.
SEPARATOR_CLASS = (
    r"[\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7"
    r"\u2000-\u206f\u2190-\u23ff\u2500-\u27bf\u3000-\u303f\ufe30-\ufe4f"
    r"\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
CJK_CLASS = (
    r"[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
SEPARATORS = re.compile(SEPARATOR_CLASS + "+")
CJK = re.compile("(" + CJK_CLASS + ")")
ONE_CJK = re.compile(CJK_CLASS)
MAX_QUERY_WORDS = 32
COMMON = 2000  # hits from which a query plans as "common" on SQLite (sqlite_search)
# The FTS5 rowid: (hour of submission + 1) << KEY_ID_BITS | id, and the id alone (hour 0,
# after all others, like the pager's tail) for a task without submit time. Ids stay below
# 2**40; hours below 2**23 (the year 2927).
KEY_ID_BITS = 40
ID_MASK = (1 << KEY_ID_BITS) - 1
PREFIX_INDEXES = "1 2 3 4 5"  # FTS5 prefix indexes: such a prefix reads one list, newest first
LONGEST_INDEXED_PREFIX = 5
# A longer last word becomes an OR of the vocabulary's words that start with it, up to this
# many; beyond, FTS5's own prefix query (correct, slower).
MAX_EXPANSION = 16

FTS_TABLE = "tasks_task_fts"
SEARCHED_COLUMNS = ("prompt", "prompt_en", "description", "fail_reason")
VOCABULARY = "tasks_task_fts_vocab"
SQL_FUNCTION = "tasks_search_text"
KEY_FUNCTION = "tasks_search_key"  # search_key
AUTO_FUNCTION = "tasks_search_auto"  # auto_index


def normalise(text):
    """The indexed form of a text: lowercase words, each CJK character a word of its own."""
    if not text:
        return ""
    text = SEPARATORS.sub(" ", text.lower())
    text = CJK.sub(r" \1 ", text)
    return " ".join(text.split())


class IndexTable(dict):
    """str.translate's table for the indexed form: a separator becomes a space, a CJK
    character " c ", anything else itself. Filled a character at a time, as met."""

    def __missing__(self, char):
        text = chr(char)
        if SEPARATORS.fullmatch(text):
            value = " "
        elif ONE_CJK.fullmatch(text):
            value = f" {text} "
        else:
            value = char  # itself (None would delete it)
        if len(self) < MAX_TABLE:  # a bound on what odd texts can make it hold
            self[char] = value
        return value


MAX_TABLE = 100_000
INDEX_TABLE = IndexTable()


def index_form(text):
    """normalise(text), the same words, with one str.translate instead of two regex passes
    (a third of the time): the SQLite triggers call it for every task written."""
    if not text:
        return ""
    return " ".join(text.lower().translate(INDEX_TABLE).split())


def document(prompt, prompt_en, description, fail_reason):
    # The SQLite triggers call this (as tasks_search_text) with a task's four text columns.
    parts = (prompt, prompt_en, description, fail_reason)
    return index_form(" ".join(part for part in parts if part))


def query_parts(text):
    """The query as a list of phrases (lists of words); every phrase must match."""
    parts = []
    count = 0
    for chunk in (text or "").split():
        words = normalise(chunk).split()
        if not words:
            continue
        words = words[: MAX_QUERY_WORDS - count]
        count += len(words)
        parts.append(words)
        if count >= MAX_QUERY_WORDS:
            break
    return parts


def is_prefixable(word):
    # A Latin word may be the start of a longer one; a CJK character is a whole word.
    return not ONE_CJK.fullmatch(word)


EXPANSION = (
    "(SELECT CASE WHEN count(*) > %s THEN %s ELSE '(' || %s"
    " || coalesce(group_concat(' OR ' || %s || term || '\"', ''), '') || ')' END"
    " FROM (SELECT term FROM tasks_task_fts_vocab WHERE term > %s AND term <= %s LIMIT %s))"
)


def fts5_query_sql(parts):
    """(SQL expression, parameters) that spell the query in FTS5's syntax: "a b" is a
    phrase, a trailing * makes its last word a prefix. Words never hold a double quote (it
    is a separator), so quoting is enough."""
    pieces, params = [], []
    for words in parts:
        phrase = '"' + " ".join(words) + '"'
        last = words[-1]
        if not is_prefixable(last):
            pieces.append("%s")
            params.append(phrase)
        elif len(last) <= LONGEST_INDEXED_PREFIX:
            pieces.append("%s")
            params.append(phrase + " *")
        else:
            # ("a word" OR "a wordier" ...): the words after `last` in the vocabulary's
            # order that start with it (a word holds neither \x01 nor U+10FFFF).
            head = '"' + " ".join(words[:-1] + [""])
            pieces.append(EXPANSION)
            params += [MAX_EXPANSION, phrase + " *", phrase, head]
            params += [last + "\x01", last + "\U0010ffff", MAX_EXPANSION + 1]
    return " || ' AND ' || ".join(pieces), params


def tsquery(parts):
    # PostgreSQL: 'a' <-> 'b' is a phrase, :* a prefix. Words hold no quote or backslash.
    phrases = []
    for words in parts:
        quoted = [f"'{w}'" for w in words]
        if is_prefixable(words[-1]):
            quoted[-1] += ":*"
        phrases.append("(" + " <-> ".join(quoted) + ")")
    return " & ".join(phrases)


class TextSearch(NamedTuple):
    """A query's conditions. `condition`: every matching task. On SQLite, for a query
    with COMMON hits or more, `since`, the start of the hour from which the index holds its
    newest COMMON hits, and `recent`: the matching tasks submitted since then, from those
    hits alone. A list of the newest matching tasks that `recent` fills is the list that
    `condition` gives (every task it leaves out is older), at a fraction of the cost.
    `recent` walks the list's index newest first (for a page: it stops early);
    `recent_by_id` fetches those hits by id and sorts them (to read most of them)."""

    condition: Q
    since: datetime | None = None
    recent: Q | None = None
    recent_by_id: Q | None = None


def text_search(text, using="default", match_id=True):
    """The TextSearch of a query (or, with match_id, of the task whose id it is).

    Costs one small query on SQLite (see sqlite_search).
    """
    text = (text or "").strip()
    task_id = text[:64] if match_id else None
    by_id = Q(task_id=task_id) if match_id else Q(pk__in=[])
    parts = query_parts(text)
    if not parts:
        return TextSearch(by_id)
    vendor = connections[using].vendor
    if vendor == "sqlite":
        return sqlite_search(parts, task_id, using)
    if vendor == "postgresql":
        # COMMON read here, not there: the property tests shrink it.
        return TextSearch(*postgresql_search(tsquery(parts), task_id, using, COMMON))
    raise NotImplementedError("the text search needs SQLite or PostgreSQL")


def text_filter(text, using="default", match_id=True):
    """A Q for tasks whose text contains the query (or, with match_id, whose id it is)."""
    return text_search(text, using, match_id).condition


SIZING = (
    "SELECT query, (SELECT rowid FROM tasks_task_fts WHERE tasks_task_fts MATCH query"
    " ORDER BY rowid DESC LIMIT 1 OFFSET %s) FROM (SELECT {expression} AS query)"
)


def sqlite_search(parts, task_id, using):
    # One query spells the FTS5 query and finds its COMMON-th newest hit, if there is one.
    expression, params = fts5_query_sql(parts)
    with connections[using].cursor() as cursor:
        cursor.execute(SIZING.format(expression=expression), [COMMON - 1, *params])
        query, nth_newest = cursor.fetchone()
    if nth_newest is None:
        # A few hits: fetch them by id and sort them (milliseconds).
        return TextSearch(Q(pk__in=hits(query, task_id)))
    # Thousands of hits: walk the list's own index (newest first) and keep rows whose id is
    # among them, read from the index alone. "id + 0" stops SQLite from instead fetching
    # every hit by id and sorting them all (1.5 s for 80,000 hits in a million rows).
    condition = Q(In(F("id") + Value(0), hits(query, task_id)))
    hour = nth_newest >> KEY_ID_BITS
    if hour <= 1:  # the newest hits reach the tasks without submit time
        return TextSearch(condition)
    since = datetime.fromtimestamp((hour - 1) * 3600, UTC)
    newest = hits(query, task_id, from_key=hour << KEY_ID_BITS)
    in_span = Q(submitted__gte=since)
    walked = in_span & Q(In(F("id") + Value(0), newest))
    return TextSearch(condition, since, walked, in_span & Q(pk__in=newest))


def hits(fts_query, task_id, from_key=None):
    """The ids of the tasks the FTS5 query finds (with from_key, in the hours from it on)
    and of the task whose id is task_id: one list, so that testing a row needs no column."""
    sql = "SELECT rowid & %s FROM tasks_task_fts WHERE tasks_task_fts MATCH %s"
    params = [ID_MASK, fts_query]
    if from_key is not None:
        sql += " AND rowid >= %s"
        params.append(from_key)
    if task_id is not None:
        sql += " UNION ALL SELECT id FROM tasks_task WHERE task_id = %s"
        params.append(task_id)
    return RawSQL(sql, params)  # noqa: S611 (constant SQL, bound parameters)


def search_key(submitted, pk):
    """The FTS5 rowid of a task (KEY_ID_BITS), from its submitted column as SQLite stores it
    (UTC text) and its id: the triggers call it as tasks_search_key."""
    try:
        moment = datetime.fromisoformat(submitted)
    except (TypeError, ValueError):  # None, or text Django would not have written
        return pk  # listed with the tasks without submit time: the write goes on
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return key_of(moment, pk)


def key_of(moment, pk):
    """search_key of an aware datetime (or None) and an id."""
    if moment is None:
        return pk
    hour = max(int(moment.timestamp() // 3600) + 1, 1)
    return hour << KEY_ID_BITS | pk


# The sync writes the index rows of the tasks it creates itself (index_new_tasks), in rowid
# order and in one executemany: through the insert trigger, each row ran a trigger program
# and two Python calls, and rows arriving newest first made FTS5 write its pending terms out
# at every hour (together half of a 100,000-task sync's database time). While it inserts,
# this flag makes the trigger's tasks_search_auto() false, so those rows are skipped.
INDEXED_BY_WRITER = ContextVar("tasks_search_indexed_by_writer", default=False)


def auto_index():
    # The insert trigger's condition (as tasks_search_auto): index the row unless its writer does.
    return 0 if INDEXED_BY_WRITER.get() else 1


@contextmanager
def indexed_by_writer():
    """Inside: inserts into tasks_task leave the SQLite index to the caller, who must call
    index_new_tasks for the rows it inserted, in the same transaction."""
    token = INDEXED_BY_WRITER.set(True)
    try:
        yield
    finally:
        INDEXED_BY_WRITER.reset(token)


def index_new_tasks(cursor, tasks):
    """Add tasks just inserted inside indexed_by_writer() to the SQLite index; tasks are
    (id, submitted datetime, prompt, prompt_en, description, fail_reason) tuples."""
    entries = sorted((key_of(moment, pk), document(*texts)) for pk, moment, *texts in tasks)
    cursor.executemany("INSERT INTO tasks_task_fts(rowid, body) VALUES (?, ?)", entries)


# PostgreSQL: the sync's COPY writes search_doc itself for texts whose words the server's
# to_tsvector('simple') is sure to take exactly as Python splits them (ASCII, the common
# CJK blocks, separators), so the server runs neither tasks_search_text's regular
# expressions nor its parser (three quarters of its time for a new task). Any other text,
# and every other writer, is left to the trigger (migration 0025), which computes it as the
# generated column did. tests/test_search_vector.py compares the two on the server.
PLAIN_CJK = r"[\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3]"
PLAIN_TEXT = re.compile(f"(?:[\x01-\x7f]|{PLAIN_CJK}|{SEPARATOR_CLASS})*")
LONGEST_PLAIN_WORD = 100  # the server skips words of 2,047 bytes and more
MOST_PLAIN_WORDS = 1000  # the server keeps 256 positions a word, none after 16,383


def postgres_vector(prompt, prompt_en, description, fail_reason):
    """search_doc as tsvector input text, or None when the server must compute it."""
    text = " ".join(part for part in (prompt, prompt_en, description, fail_reason) if part)
    if not PLAIN_TEXT.fullmatch(text):
        return None
    words = index_form(text).split()
    if len(words) > MOST_PLAIN_WORDS or max(map(len, words), default=0) > LONGEST_PLAIN_WORD:
        return None
    # A word met again is another entry: the server merges their positions. No word holds a
    # quote or a backslash (ASCII punctuation is a separator).
    return " ".join([f"'{word}':{position}" for position, word in enumerate(words, 1)])


# The schema, created by migration 0003_search and checked again after every migrate.

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_insert AFTER INSERT ON tasks_task
    WHEN tasks_search_auto() BEGIN
        INSERT INTO tasks_task_fts(rowid, body) VALUES (tasks_search_key(new.submitted, new.id),
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    # Only when a searched column or the submit time (the rowid) really changed: progress
    # updates leave the index alone.
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_update
    AFTER UPDATE OF prompt, prompt_en, description, fail_reason, submitted ON tasks_task
    WHEN old.prompt IS NOT new.prompt OR old.prompt_en IS NOT new.prompt_en
        OR old.description IS NOT new.description OR old.fail_reason IS NOT new.fail_reason
        OR old.submitted IS NOT new.submitted
    BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = tasks_search_key(old.submitted, old.id);
        INSERT INTO tasks_task_fts(rowid, body) VALUES (tasks_search_key(new.submitted, new.id),
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_delete AFTER DELETE ON tasks_task BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = tasks_search_key(old.submitted, old.id);
    END""",
]
# In rowid order: FTS5 writes out what it holds whenever a rowid is lower than the last.
SQLITE_BACKFILL = """
    INSERT INTO tasks_task_fts(rowid, body)
    SELECT tasks_search_key(submitted, id),
        tasks_search_text(prompt, prompt_en, description, fail_reason)
    FROM tasks_task WHERE tasks_search_key(submitted, id) NOT IN (SELECT rowid FROM tasks_task_fts)
    ORDER BY 1
"""
SQLITE_TABLE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {{name}} USING fts5(body,"
    f" tokenize = 'unicode61 remove_diacritics 0', prefix = '{PREFIX_INDEXES}')"
)
SQLITE_VOCABULARY = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCABULARY} USING fts5vocab({FTS_TABLE}, 'row')"
)

POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SQL_FUNCTION}(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT btrim(regexp_replace(
        regexp_replace(lower(t), '{SEPARATOR_CLASS}+', ' ', 'g'),
        '({CJK_CLASS})', ' \\1 ', 'g'))
$fn$
"""
POSTGRES_COLUMN = f"""
ALTER TABLE tasks_task ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, {SQL_FUNCTION}(
        coalesce(prompt, '') || ' ' || coalesce(prompt_en, '') || ' ' ||
        coalesce(description, '') || ' ' || coalesce(fail_reason, '')))
) STORED
"""
# The task list's text search (text_filter).
POSTGRES_INDEX = "CREATE INDEX task_search_idx ON tasks_task USING gin (search_doc)"
# Migration 0025: search_doc written by the sync's COPY (postgres_vector) or else by these.
POSTGRES_TEXTS = [f"coalesce({{row}}.{column}, '')" for column in SEARCHED_COLUMNS]
POSTGRES_TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION tasks_task_search_doc() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.search_doc := to_tsvector('simple'::regconfig, {SQL_FUNCTION}(
        {" || ' ' || ".join(POSTGRES_TEXTS).format(row="NEW")}));
    RETURN NEW;
END
$fn$
"""
POSTGRES_TRIGGERS = [
    """CREATE TRIGGER tasks_task_search_doc_insert BEFORE INSERT ON tasks_task
    FOR EACH ROW WHEN (NEW.search_doc IS NULL) EXECUTE FUNCTION tasks_task_search_doc()""",
    f"""CREATE TRIGGER tasks_task_search_doc_update
    BEFORE UPDATE OF {", ".join(SEARCHED_COLUMNS)} ON tasks_task FOR EACH ROW
    WHEN ({" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in SEARCHED_COLUMNS)})
    EXECUTE FUNCTION tasks_task_search_doc()""",
]


def register_function(dbapi_connection):
    dbapi_connection.create_function(SQL_FUNCTION, 4, document, deterministic=True)
    dbapi_connection.create_function(KEY_FUNCTION, 2, search_key, deterministic=True)
    dbapi_connection.create_function(AUTO_FUNCTION, 0, auto_index)


def on_connection_created(sender, connection, **kwargs):
    if connection.vendor == "sqlite":
        register_function(connection.connection)


def install():
    """Register the SQLite search function on every connection; mend the schema after migrate.

    Must run at start-up in every process that writes tasks (the triggers call the
    function): TasksConfig.ready() calls it.
    """
    connection_created.connect(on_connection_created, dispatch_uid="tasks.db.search")
    post_migrate.connect(after_migrate, dispatch_uid="tasks.db.search.after_migrate")
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite" and conn.connection is not None:
            register_function(conn.connection)


def create_schema(schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        register_function(connection.connection)
        schema_editor.execute(SQLITE_TABLE.format(name=FTS_TABLE))
        schema_editor.execute(SQLITE_VOCABULARY)
        for sql in SQLITE_TRIGGERS:
            schema_editor.execute(sql)
        schema_editor.execute(SQLITE_BACKFILL)
    elif connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTION)
        schema_editor.execute(POSTGRES_COLUMN)
        schema_editor.execute(POSTGRES_INDEX)


def drop_schema(schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        drop_triggers(schema_editor)
        schema_editor.execute(f"DROP TABLE IF EXISTS {VOCABULARY}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    elif connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS task_search_idx")
        schema_editor.execute("ALTER TABLE tasks_task DROP COLUMN IF EXISTS search_doc")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {SQL_FUNCTION}(text)")


def drop_triggers(schema_editor):
    for name in ("insert", "update", "delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS tasks_task_fts_{name}")


def is_keyed_by_time(connection):
    """Whether the SQLite FTS5 table has this module's layout (migration 0021_search_sqlite):
    rowids by submit hour, prefix indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [FTS_TABLE]
        )
        row = cursor.fetchone()
    return row is not None and "prefix" in row[0]


def rekey_sqlite_table(schema_editor):
    """Rebuild an FTS5 table of the layout before 0021_search_sqlite (rowid = the task's id,
    no prefix indexes) in this module's, from the text it holds: one INSERT ... SELECT in
    rowid order (so FTS5 writes each word's list once), row by row, never all in memory."""
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or is_keyed_by_time(connection):
        return  # PostgreSQL, or a database made with this layout by 0003_search
    connection.ensure_connection()
    register_function(connection.connection)
    drop_triggers(schema_editor)
    schema_editor.execute(SQLITE_TABLE.format(name="tasks_task_fts_new"))
    schema_editor.execute(
        "INSERT INTO tasks_task_fts_new(rowid, body)"
        " SELECT tasks_search_key(t.submitted, t.id), f.body"
        " FROM tasks_task_fts f JOIN tasks_task t ON t.id = f.rowid ORDER BY 1"
    )
    schema_editor.execute(f"DROP TABLE {FTS_TABLE}")
    schema_editor.execute(f"ALTER TABLE tasks_task_fts_new RENAME TO {FTS_TABLE}")
    schema_editor.execute(SQLITE_VOCABULARY)
    for sql in SQLITE_TRIGGERS:
        schema_editor.execute(sql)


def after_migrate(sender, using="default", **kwargs):
    # On SQLite, a later migration that rebuilds tasks_task (Django's "remake table")
    # drops its triggers with the old table: put them back and index what was missed.
    if sender.name != "tasks":
        return
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    if not is_keyed_by_time(connection):
        return  # migrated backwards past 0003_search or 0021_search_sqlite
    with connection.cursor() as cursor:
        register_function(connection.connection)
        for sql in SQLITE_TRIGGERS:
            cursor.execute(sql)
        cursor.execute(SQLITE_BACKFILL)
