"""The text search: short Chinese words, English prefixes, ids; an index that keeps up."""

import pytest
from django.apps import apps
from django.db import connection

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


# The normal form


@pytest.mark.parametrize(
    "text, expected",
    [
        ("黄昏时的灯塔", "黄 昏 时 的 灯 塔"),
        ("Lighthouse at DUSK, --ar 16:9", "lighthouse at dusk ar 16 9"),
        ("猫猫cat", "猫 猫 cat"),
        ("“引号”，逗号。", "引 号 逗 号"),
        ("ねこ 고양이", "ね こ 고 양 이"),
        ("/up 1700000000000001 U1", "up 1700000000000001 u1"),
        ("café", "café"),
        ("", ""),
        (None, ""),
    ],
)
def test_the_normal_form_makes_each_cjk_character_a_word(text, expected):
    assert search.normalise(text) == expected


def test_a_query_becomes_phrases_that_must_all_match():
    parts = search.query_parts("黄昏 灯塔 light")
    assert parts == [["黄", "昏"], ["灯", "塔"], ["light"]]
    assert search.fts5_query(parts) == '"黄 昏" AND "灯 塔" AND "light" *'
    assert search.tsquery(parts) == "('黄' <-> '昏') & ('灯' <-> '塔') & ('light':*)"


def test_a_query_of_punctuation_only_has_no_words():
    assert search.query_parts(' "" ，。 -- ') == []


def test_a_long_query_is_cut_to_a_bounded_number_of_words():
    parts = search.query_parts("猫" * 500)
    assert sum(len(p) for p in parts) == search.MAX_QUERY_WORDS


def test_quotes_and_operators_in_a_query_cannot_break_out_of_the_phrase():
    parts = search.query_parts('a" OR "b \' NEAR( c:* ) & !d')
    assert search.fts5_query(parts).count('"') == 2 * len(parts)
    assert all(w.isalnum() for p in parts for w in p)


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
    store(source, "1", prompt="灯塔")  # written while the triggers were gone
    assert found("灯塔") == []

    search.after_migrate(apps.get_app_config("tasks"), using="default")

    assert found("灯塔") == ["1"]
    store(source, "2", prompt="灯塔")
    assert found("灯塔") == ["1", "2"]
