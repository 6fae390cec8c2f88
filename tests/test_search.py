"""The text search: short Chinese words, English prefixes, ids; an index that keeps up.

Every check here goes through real rows and the database's own index (FTS5 on SQLite,
tsvector on PostgreSQL): what a search finds and what it does not, never the text of the
query the database is sent, so a change of how the query is spelled cannot break these
and a change of what it finds cannot pass them.
"""

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.db import search
from tasks.ingest.sync import ingest
from tasks.models import Source, Task

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the FTS5 triggers exist on SQLite only"
)


def found(text):
    return sorted(Task.objects.filter(search.text_filter(text)).values_list("task_id", flat=True))


@pytest.fixture
def source(db):
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


def store(source, task_id, **fields):
    ingest(source, [{"id": task_id, "status": "SUCCESS", "submitTime": 1700000000000, **fields}])


# What a query finds


@pytest.fixture
def prompts(source):
    for task_id, prompt in [
        ("1", "黄昏时的灯塔"),
        ("2", "Lighthouse at DUSK, --ar 16:9"),
        ("3", "猫猫cat"),
        ("4", "“引号”，逗号。"),
        ("5", "ねこ 고양이"),
        ("6", "Un CAFÉ crème"),
    ]:
        store(source, task_id, prompt=prompt)


@pytest.mark.parametrize(
    "query, expected",
    [
        # Chinese: any one or two characters that stand side by side, anywhere.
        ("灯塔", ["1"]),
        ("黄昏", ["1"]),
        ("时", ["1"]),
        ("塔灯", []),
        ("黄塔", []),
        # Latin: any case, punctuation in the prompt or the query does not matter.
        ("lighthouse", ["2"]),
        ("DUSK", ["2"]),
        ("dusk,", ["2"]),
        ("16:9", ["2"]),
        ("--ar", ["2"]),
        ("16:10", []),
        # Chinese and Latin run together are both words.
        ("猫猫", ["3"]),
        ("cat", ["3"]),
        ("猫猫cat", ["3"]),
        # Full-width punctuation is not part of a word.
        ("引号", ["4"]),
        ("“逗号”", ["4"]),
        ("逗号。", ["4"]),
        # Japanese and Korean as Chinese: each character a word.
        ("ねこ", ["5"]),
        ("고양이", ["5"]),
        ("양이", ["5"]),
        ("이양", []),
        # Accented letters are letters, in either case.
        ("café", ["6"]),
        ("CRÈME", ["6"]),
        ("nothing-like-it", []),
    ],
)
def test_a_query_finds_the_words_whatever_the_case_punctuation_and_script(prompts, query, expected):
    assert found(query) == expected


def test_every_part_of_a_query_must_match_and_a_latin_word_may_be_a_prefix(source):
    store(source, "1", prompt="黄昏时的灯塔", promptEn="lighthouse at dusk")
    store(source, "2", prompt="黄昏的海")  # 黄昏, no 灯塔
    store(source, "3", prompt="灯下的塔", promptEn="a light")  # 灯 and 塔, not side by side
    store(source, "4", prompt="灯塔", promptEn="delight")  # "light" inside a word

    assert found("黄昏 灯塔 light") == ["1"]
    assert found("灯塔") == ["1", "4"]
    assert found("黄昏") == ["1", "2"]
    assert found("light") == ["1", "3"]  # the start of a word, not its middle
    assert found("灯塔 light") == ["1"]
    assert found("dusk lighthouse") == ["1"]  # in any order


def test_a_query_of_punctuation_only_finds_nothing_and_fails_nothing(source):
    store(source, "1", prompt='“引号”，逗号。 -- "quoted"')

    assert found(' "" ，。 -- ') == []


def test_a_very_long_query_is_answered_with_a_bounded_database_query(source):
    store(source, "1", prompt="猫" * 600)
    store(source, "2", prompt="猫" * 5)
    long_query = "猫" * 500 + " " + " ".join(["猫"] * 5000)

    with CaptureQueriesContext(connection) as queries:
        hits = found(long_query)

    assert hits == ["1"]  # what the query asks for, as far as it is read
    assert queries.captured_queries
    assert all(len(q["sql"]) < 2000 for q in queries.captured_queries), [
        len(q["sql"]) for q in queries.captured_queries
    ]


@pytest.mark.parametrize(
    "query, expected",
    [
        # Were these operators, the first ones would find every task, "cat & !dog" task 1,
        # NEAR tasks 3 and 4, "body:cat" the tasks with "cat", <-> none.
        ('cat" OR "dog', ["3"]),
        ("cat OR dog", ["3"]),
        ("cat AND dog", ["4"]),
        ("cat | dog", ["3", "4"]),
        ("cat' | 'dog", ["3", "4"]),
        ("cat & !dog", ["3", "4"]),
        ("cat -dog", ["3", "4"]),
        ("cat NOT dog", ["3"]),
        ("NEAR(cat dog)", ["3"]),
        ("body:cat", []),
        ("cat:* dog", ["3", "4"]),
        ("cat\\ dog", ["3", "4"]),
        ("(cat) <-> (dog)", ["3", "4"]),
    ],
)
def test_search_syntax_typed_in_a_query_is_words_never_operators(source, query, expected):
    # FTS5's and tsquery's own syntax typed in the box is searched as words: no error from
    # the database, no OR, NOT, NEAR, column filter or phrase operator.
    store(source, "1", prompt="a cat")
    store(source, "2", prompt="a dog")
    store(source, "3", prompt="dog or not near cat")
    store(source, "4", prompt="dog and cat")

    assert found(query) == expected


# The index, through real rows


def test_one_and_two_character_chinese_words_are_found(source):
    store(source, "1", prompt="黄昏时的灯塔")
    store(source, "2", prompt="猫猫", promptEn="Cat")
    store(source, "3", prompt="一只猫在睡觉")

    assert found("灯塔") == ["1"]
    assert found("猫猫") == ["2"]
    assert found("猫") == ["2", "3"]
    assert found("塔灯") == []
    assert found("黄昏 塔") == ["1"]  # each part anywhere


def test_every_searched_field_and_the_id_are_found(source):
    store(source, "1700000000000001", prompt="a", promptEn="lighthouse", description="/imagine x")
    store(source, "1700000000000002", failReason="任务超时", description="/up 1700000000000001 U1")

    assert found("LIGHT") == ["1700000000000001"]  # promptEn, a prefix, any case
    assert found("超时") == ["1700000000000002"]  # failReason
    assert found("imagine") == ["1700000000000001"]  # description
    # The id: the task itself, and the task whose command names it.
    assert found("1700000000000001") == ["1700000000000001", "1700000000000002"]
    assert found("1700000000000002") == ["1700000000000002"]


def test_the_index_follows_updates_and_deletes(source):
    store(source, "1", prompt="灯塔", status="IN_PROGRESS", progress="10%")
    store(source, "1", prompt="灯塔", status="IN_PROGRESS", progress="50%")  # progress only
    assert found("灯塔") == ["1"]

    store(source, "1", prompt="山水", status="SUCCESS", progress="100%")
    assert found("灯塔") == []
    assert found("山水") == ["1"]

    Task.objects.filter(task_id="1").update(prompt="日出")
    assert found("日出") == ["1"]

    Task.objects.all().delete()
    assert found("日出") == []


def test_tasks_written_by_the_orm_directly_are_indexed(source):
    Task.objects.create(source=source, task_id="9", prompt="樱花", raw="{}", raw_hash="x")
    assert found("樱花") == ["9"]


@sqlite_only
def test_the_index_holds_one_row_per_task_after_repeated_upserts(source):
    for progress in ("10%", "20%", "30%"):
        store(source, "1", prompt="灯塔", status="IN_PROGRESS", progress=progress)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tasks_task_fts")
        assert cursor.fetchone()[0] == 1


@sqlite_only
def test_triggers_lost_to_a_table_rebuild_come_back_after_migrate(source):
    with connection.cursor() as cursor:
        for name in ("insert", "update", "delete"):
            cursor.execute(f"DROP TRIGGER tasks_task_fts_{name}")
    # Written while the triggers were gone, by the ORM (the sync indexes what it creates
    # itself: tasks/db/search.py, index_new_tasks).
    Task.objects.create(source=source, task_id="1", prompt="灯塔", raw="{}", raw_hash="x")
    assert found("灯塔") == []

    search.after_migrate(apps.get_app_config("tasks"), using="default")

    assert found("灯塔") == ["1"]
    store(source, "2", prompt="灯塔")
    assert found("灯塔") == ["1", "2"]
