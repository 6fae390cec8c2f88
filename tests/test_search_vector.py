"""The search index rows the sync writes itself match what the database would compute.

The sync's bulk insert writes the SQLite FTS5 rows of the tasks it creates, and on
PostgreSQL the `search_doc` of plain texts, instead of leaving them to triggers
(tasks/db/search.py). Each test here compares what was stored with what the database's own
functions compute from the stored columns, for tasks written both ways.
"""

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.db import bulk, search
from tasks.ingest.sync import ingest
from tasks.models import Source, Task

on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 index")
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's search_doc"
)

# Prompts as people type them, and texts the Python side must leave to the server.
PROMPTS = [
    "黄昏时的灯塔 at dusk --ar 16:9 --v 6.1",
    "Lighthouse portrait, cinematic; f/1.8",
    "猫猫 and 狗狗！（可爱）",
    "東京の夜景 ネオン",
    "서울 야경",
    "Café crème, naïve",  # accented: the server's
    "emoji 🐱 cat",  # a symbol the server's parser drops: the server's
    "KELVIN \u212a sign",  # Python lowers it to k: the server's
    "word " * 1200,  # more words than written here: the server's
    "x" * 150,  # a long word: the server's
    "",
]


def records(prompts, first_id=1):
    return [
        {
            "id": str(first_id + i),
            "status": "SUCCESS",
            "prompt": prompt,
            "promptEn": prompt.upper(),
            "description": f"/imagine {prompt}",
            "failReason": "banned prompt" if i % 3 == 0 else None,
            # Submitted newest first, in different hours, as a proxy lists them.
            "submitTime": 1_700_000_000_000 - i * 3_600_000,
        }
        for i, prompt in enumerate(prompts)
    ]


@pytest.fixture
def source(db):
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


def write_both_ways(source):
    """Enough tasks for the sync's bulk path (COPY on PostgreSQL), and one by the ORM."""
    many = PROMPTS * (bulk.COPY_FROM // len(PROMPTS) + 1)
    counts, _ = ingest(source, records(many))
    assert counts.created == len(many)
    Task.objects.create(source=source, task_id="orm", prompt=PROMPTS[0], raw="{}", raw_hash="x")


@on_sqlite
def test_sqlite_index_rows_are_the_triggers_rows(source):
    write_both_ways(source)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rowid, body FROM tasks_task_fts ORDER BY rowid")
        stored = cursor.fetchall()
        cursor.execute(
            "SELECT tasks_search_key(submitted, id),"
            " tasks_search_text(prompt, prompt_en, description, fail_reason)"
            " FROM tasks_task ORDER BY 1"
        )
        expected = cursor.fetchall()
    assert stored == expected
    assert len(stored) == Task.objects.count()


@on_sqlite
def test_sqlite_tasks_are_created_in_submit_order(source):
    # Ids ascend with submit time whatever order the proxy lists them in, so the index
    # takes its keys in ascending order.
    ingest(source, records(PROMPTS))
    by_id = list(Task.objects.order_by("pk").values_list("submitted", flat=True))
    assert by_id == sorted(by_id)


SERVER_DOC = (
    "to_tsvector('simple', tasks_search_text(coalesce(prompt, '') || ' ' ||"
    " coalesce(prompt_en, '') || ' ' || coalesce(description, '') || ' ' ||"
    " coalesce(fail_reason, '')))"
)


@on_postgresql
def test_postgresql_search_doc_is_the_servers(source):
    write_both_ways(source)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT task_id FROM tasks_task WHERE search_doc IS DISTINCT FROM {SERVER_DOC}"  # noqa: S608
        )
        assert cursor.fetchall() == []
        cursor.execute("SELECT count(*) FROM tasks_task WHERE search_doc IS NULL")
        assert cursor.fetchone()[0] == 0
    # Both ways were taken: plain texts by Python, the rest by the trigger.
    assert search.postgres_vector(*[PROMPTS[0]] * 4) is not None
    assert search.postgres_vector(PROMPTS[5], "", "", "") is None


@on_postgresql
def test_postgresql_search_doc_follows_a_changed_text(source):
    write_both_ways(source)
    Task.objects.filter(task_id="orm").update(prompt="日出 sunrise")
    counts, _ = ingest(source, [{**records(["晚霞 sunset"])[0], "status": "SUCCESS"}])
    assert counts.updated == 1
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM tasks_task WHERE search_doc IS DISTINCT FROM {SERVER_DOC}"  # noqa: S608
        )
        assert cursor.fetchone()[0] == 0
    assert sorted(
        Task.objects.filter(search.text_filter("sunrise")).values_list("task_id", flat=True)
    ) == ["orm"]
    assert list(
        Task.objects.filter(search.text_filter("晚霞")).values_list("task_id", flat=True)
    ) == ["1"]


WORDS = st.sampled_from(
    ["light", "House", "v6", "16", "9", "灯", "塔", "東京", "ネオン", "서울", "a1b2", "x" * 99]
)
SEPARATORS = st.sampled_from([" ", ", ", "--", "/", "！", "（", "。", "\n", "\t", "·", ""])
TEXTS = st.lists(st.tuples(WORDS, SEPARATORS), max_size=12).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)


@on_postgresql
@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.tuples(TEXTS, TEXTS, TEXTS, TEXTS))
def test_postgresql_vector_equals_to_tsvector(texts):
    vector = search.postgres_vector(*texts)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::tsvector = to_tsvector('simple', tasks_search_text(%s)),"
            " %s::tsvector::text",
            [vector, " ".join(texts), vector],
        )
        same, shown = cursor.fetchone()
    if vector is not None:
        assert same, shown
