"""The backfill of the derived columns (tasks/ingest/backfill.py): `manage.py derive_columns`
and migration 0013 fill the columns of tasks stored before them, batch by batch, and a
run that stops is resumed from the pk it reported."""

import io
import json

import pytest
from django.core.management import call_command

from tasks.ingest.backfill import backfill
from tasks.models import Source, Task
from tests.conftest import make_task

pytestmark = pytest.mark.django_db

CHANNEL = "1300000000000000001"


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


def stored_before_the_columns(source, n, **record):
    """Tasks whose derived columns are empty, as rows stored before migration 0012."""
    for i in range(n):
        make_task(
            source,
            task_id=f"17000000000{i:05d}",
            record={
                "prompt": f"cat {i} --ar 16:9 --v 6.1",
                "mode": "RELAX",
                "properties": {"discordInstanceId": CHANNEL},
                "userId": f"user{i % 3}",
                **record,
            },
        )
    assert set(Task.objects.values_list("mode", "version", "caller")) == {("", "", "")}


def test_it_derives_every_tasks_columns_from_its_raw_record(source):
    stored_before_the_columns(source, 7)
    done, last_pk = backfill(Task, batch=3)
    assert done == 7
    assert last_pk == Task.objects.order_by("-pk").values_list("pk", flat=True).first()
    rows = set(Task.objects.values_list("mode", "version", "aspect", "account"))
    assert rows == {("relax", "6.1", "16:9", CHANNEL)}
    callers = sorted(Task.objects.values_list("caller", flat=True))
    assert callers == ["user0"] * 3 + ["user1"] * 2 + ["user2"] * 2


def test_it_goes_in_batches_and_resumes_after_the_pk_it_reported(source):
    stored_before_the_columns(source, 5)
    pks = sorted(Task.objects.values_list("pk", flat=True))
    reports = []
    backfill(Task, after=pks[1], batch=2, progress=lambda done, last: reports.append((done, last)))
    assert reports == [(2, pks[3]), (3, pks[4])]
    assert list(Task.objects.order_by("pk").values_list("mode", flat=True)) == [
        "", "", "relax", "relax", "relax"
    ]  # fmt: skip


def test_a_record_that_is_no_json_object_gets_empty_columns(source):
    stored_before_the_columns(source, 1)
    Task.objects.update(raw='["not", "a task"]', mode="fast", caller="someone")
    make_task(source, task_id="1700000000009999", raw="[" * 5000 + "]" * 5000)
    assert backfill(Task)[0] == 2
    assert set(Task.objects.values_list("mode", "caller")) == {("", "")}


def test_a_new_api_row_is_derived_from_its_task_shape(source):
    row = {
        "id": 88, "code": 1, "user_id": 3, "action": "IMAGINE", "mj_id": "1754380000123456",
        "prompt": "lighthouse", "prompt_en": "lighthouse", "description": "提交成功", "state": "",
        "submit_time": 1754380000200, "status": "SUCCESS", "progress": "100%",
        "properties": '{"finalPrompt":"lighthouse at dusk --v 7 --ar 3:2","finalZhPrompt":""}',
    }  # fmt: skip
    make_task(source, task_id="1754380000123456", raw=json.dumps(row))
    backfill(Task)
    task = Task.objects.get()
    assert (task.caller, task.version, task.aspect) == ("3", "7", "3:2")


def test_the_command_prints_how_many_and_where_to_resume(source, monkeypatch):
    monkeypatch.setattr("tasks.management.commands.derive_columns.PROGRESS_EVERY", 2)
    stored_before_the_columns(source, 4)
    out = io.StringIO()
    call_command("derive_columns", "--batch", "2", stdout=out)
    last = Task.objects.order_by("-pk").values_list("pk", flat=True).first()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith(f"derived the columns of 4 tasks, up to pk {last}")
    assert f"to resume: derive_columns --after {last}" in lines[-2]
    assert set(Task.objects.values_list("mode", flat=True)) == {"relax"}
