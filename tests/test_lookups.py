"""The constant lookups: same rows as the plain ones, and a plan that uses the partial index."""

import pytest
from django.db import OperationalError, connection

from tasks.db.lookups import literal
from tasks.models import Source, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed():
    source = Source.objects.create(name="s", base_url="http://127.0.0.1:9")
    rows = [
        ("a", "SUCCESS", "pending", None),
        ("b", "IN_PROGRESS", "none", None),
        ("c", "FAILURE", "none", None),
        ("d", "NOT_START", "pending", None),
        ("e", "", "archived", None),
        ("f", "IN_PROGRESS", "none", "2024-01-01T00:00:00Z"),  # gone: not to refresh
    ]
    for task_id, status, image_state, gone in rows:
        Task.objects.create(
            source=source,
            task_id=task_id,
            status=status,
            image_state=image_state,
            gone_since=gone,
            raw="{}",
        )
    return source


def ids(qs):
    return sorted(qs.values_list("task_id", flat=True))


def test_unfinished_and_pending_images_select_what_the_plain_lookups_do(mixed):
    plain_unfinished = Task.objects.exclude(status__in=["SUCCESS", "FAILURE", "CANCEL"]).filter(
        gone_since__isnull=True
    )
    assert ids(Task.objects.unfinished()) == ids(plain_unfinished) == ["b", "d", "e"]
    assert ids(Task.objects.pending_images()) == ["a", "d"]
    # Inside a subquery (its table has another alias there) as the light pass uses it.
    tasks = Task.objects.filter(source=mixed)
    assert ids(tasks.exclude(pk__in=tasks.unfinished())) == ["a", "c", "f"]


def runs_with_index(qs, index):
    """Whether SQLite can answer the query with this index ("INDEXED BY" fails if not)."""
    sql, params = qs.values_list("pk").query.sql_with_params()
    sql = sql.replace('FROM "tasks_task"', f'FROM "tasks_task" INDEXED BY {index}', 1)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    except OperationalError as exc:
        assert "no query solution" in str(exc)
        return False
    return True


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's partial-index matching")
def test_sqlite_can_serve_them_from_the_partial_indexes(mixed):
    tasks = Task.objects.filter(source=mixed)
    assert runs_with_index(tasks.unfinished(), "task_unfinished_idx")
    assert runs_with_index(Task.objects.pending_images(), "task_image_pending_idx")
    # What the constants are for: with bound parameters SQLite cannot use them.
    plain = tasks.exclude(status__in=["SUCCESS", "FAILURE", "CANCEL"]).filter(
        gone_since__isnull=True
    )
    assert not runs_with_index(plain, "task_unfinished_idx")
    assert not runs_with_index(Task.objects.filter(image_state="pending"), "task_image_pending_idx")


@pytest.mark.parametrize("value", ["it's", "a b", "", 3, "x) OR (1=1"])
def test_only_plain_constants_are_written_into_sql(value):
    with pytest.raises(ValueError):
        literal(value)
