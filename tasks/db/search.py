"""The text search over prompt, promptEn, description and failReason, plus the task id.

People search Chinese prompts for one- and two-character words (`猫猫`, `灯塔` inside
`黄昏时的灯塔`), which trigram indexes cannot find (a three-character floor) and which a
word tokenizer misses (a run of Chinese is one "word"). So the indexed text is first
normalised: lowercased, punctuation turned into spaces, and every CJK character made a
word of its own ("黄昏时的灯塔 at dusk" -> "黄 昏 时 的 灯 塔 at dusk"). A query is
normalised the same way and becomes a phrase of those words, so `灯塔` is the phrase
"灯 塔" and matches wherever the two characters stand side by side.

- SQLite: an FTS5 table `tasks_task_fts` (unicode61, rowid = tasks_task.id) kept in step
  by triggers that call `tasks_search_text()`, a Python function registered on every
  connection (`install()`); the query is an FTS5 phrase, `"灯 塔"`.
- PostgreSQL: a stored generated column `tasks_task.search_doc`, to_tsvector('simple')
  of the same normalised text computed by the SQL function `tasks_search_text()`, with a
  GIN index `task_search_idx`; the query is `'灯' <-> '塔'`.
Both are created by migration 0003_search. Whitespace-separated parts of a query must
all match (AND); a Latin word at the end of a part also matches as a prefix ("light"
finds "lighthouse"). A query that is a task id also matches that task exactly.

At a million tasks (SQLite): a rare word answers in a few ms, a word in 80,000 prompts
in about 60 ms, because text_filter plans the two cases differently (is_common).
"""

import re

from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models import BooleanField, F, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.lookups import In
from django.db.models.signals import post_migrate

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
COMMON = 2000  # hits from which a query plans as "common" on SQLite (text_filter)

FTS_TABLE = "tasks_task_fts"
SQL_FUNCTION = "tasks_search_text"


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


def fts5_query(parts):
    # FTS5: "a b" is a phrase, a trailing * makes its last word a prefix. Words never
    # hold a double quote (it is a separator), so quoting is enough.
    phrases = []
    for words in parts:
        phrase = '"' + " ".join(words) + '"'
        if is_prefixable(words[-1]):
            phrase += " *"
        phrases.append(phrase)
    return " AND ".join(phrases)


def tsquery(parts):
    # PostgreSQL: 'a' <-> 'b' is a phrase, :* a prefix. Words hold no quote or backslash.
    phrases = []
    for words in parts:
        quoted = [f"'{w}'" for w in words]
        if is_prefixable(words[-1]):
            quoted[-1] += ":*"
        phrases.append("(" + " <-> ".join(quoted) + ")")
    return " & ".join(phrases)


def text_filter(text, using="default", match_id=True):
    """A Q for tasks whose text contains the query (or, with match_id, whose id it is).

    Costs one small query on SQLite (see is_common).
    """
    text = (text or "").strip()
    condition = Q(task_id=text[:64]) if match_id else Q(pk__in=[])
    parts = query_parts(text)
    if not parts:
        return condition
    vendor = connections[using].vendor
    if vendor == "sqlite":
        query = fts5_query(parts)
        hits = RawSQL(  # noqa: S611 (constant SQL, the query is a bound parameter)
            "SELECT rowid FROM tasks_task_fts WHERE tasks_task_fts MATCH %s", [query]
        )
        if is_common(query, using):
            # Thousands of hits: walk the list's own index (newest first) and keep rows
            # whose id is among them. "id + 0" stops SQLite from instead fetching every
            # hit by id and sorting them all (1.5 s for 80,000 hits in a million rows).
            return condition | Q(In(F("id") + Value(0), hits))
        # A few hits: fetch them by id and sort them (milliseconds).
        return condition | Q(pk__in=hits)
    if vendor == "postgresql":
        found = RawSQL(  # noqa: S611 (constant SQL, the query is a bound parameter)
            "search_doc @@ to_tsquery('simple', %s)", [tsquery(parts)], output_field=BooleanField()
        )
        return condition | Q(found)
    raise NotImplementedError("the text search needs SQLite or PostgreSQL")


def is_common(fts_query, using="default"):
    """Whether a query has at least COMMON hits: counting stops there, so it stays cheap."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM tasks_task_fts WHERE tasks_task_fts MATCH %s "
            "LIMIT %s)",
            [fts_query, COMMON],
        )
        return cursor.fetchone()[0] >= COMMON


# The schema, created by migration 0003_search and checked again after every migrate.

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_insert AFTER INSERT ON tasks_task BEGIN
        INSERT INTO tasks_task_fts(rowid, body) VALUES (new.id,
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    # Only when a searched column really changed: progress updates leave the index alone.
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_update
    AFTER UPDATE OF prompt, prompt_en, description, fail_reason ON tasks_task
    WHEN old.prompt IS NOT new.prompt OR old.prompt_en IS NOT new.prompt_en
        OR old.description IS NOT new.description OR old.fail_reason IS NOT new.fail_reason
    BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = old.id;
        INSERT INTO tasks_task_fts(rowid, body) VALUES (new.id,
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    """CREATE TRIGGER IF NOT EXISTS tasks_task_fts_delete AFTER DELETE ON tasks_task BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = old.id;
    END""",
]
SQLITE_BACKFILL = """
    INSERT INTO tasks_task_fts(rowid, body)
    SELECT id, tasks_search_text(prompt, prompt_en, description, fail_reason) FROM tasks_task
    WHERE id NOT IN (SELECT rowid FROM tasks_task_fts)
"""

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


def register_function(dbapi_connection):
    dbapi_connection.create_function(SQL_FUNCTION, 4, document, deterministic=True)


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
        schema_editor.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
            "body, tokenize = 'unicode61 remove_diacritics 0')"
        )
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
        for name in ("insert", "update", "delete"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS tasks_task_fts_{name}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    elif connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS task_search_idx")
        schema_editor.execute("ALTER TABLE tasks_task DROP COLUMN IF EXISTS search_doc")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {SQL_FUNCTION}(text)")


def after_migrate(sender, using="default", **kwargs):
    # On SQLite, a later migration that rebuilds tasks_task (Django's "remake table")
    # drops its triggers with the old table: put them back and index what was missed.
    if sender.name != "tasks":
        return
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = %s", [FTS_TABLE]
        )
        if not cursor.fetchone()[0]:
            return  # migrated backwards past 0003_search
        register_function(connection.connection)
        for sql in SQLITE_TRIGGERS:
            cursor.execute(sql)
        cursor.execute(SQLITE_BACKFILL)
