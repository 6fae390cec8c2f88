"""The notify-hook: the proxy pushes each change to /hooks/mj/<token>/."""

import json
import logging
import time

import pytest
from django.core.management import call_command

from tasks.models import Source, SyncRun, Task, TaskEvent
from tasks.simulator import Simulator

pytestmark = pytest.mark.django_db

RECORD = {
    "id": "1700000000000301",
    "action": "IMAGINE",
    "status": "IN_PROGRESS",
    "prompt": "灯塔",
    "progress": "46%",
    "submitTime": 1700000000000,
}


@pytest.fixture
def source():
    return Source.objects.create(name="pushy", base_url="http://127.0.0.1:9")


def push(client, source, body, token=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    return client.post(
        f"/hooks/mj/{token or source.hook_token}/", data, content_type="application/json"
    )


def test_a_pushed_record_appears_without_any_sync_pass(client, source):
    response = push(client, source, RECORD)

    assert response.status_code == 200
    task = Task.objects.get(task_id=RECORD["id"])
    assert json.loads(task.raw) == RECORD
    assert task.events.get().via == "hook"
    assert SyncRun.objects.count() == 0
    source.refresh_from_db()
    assert source.hooks_received == 1 and source.last_hook_at is not None


def test_a_stale_push_is_ignored(client, source):
    push(client, source, dict(RECORD, status="SUCCESS", progress="100%"))

    response = push(client, source, RECORD)

    assert response.json()["outcome"] == "ignored"
    assert Task.objects.get(task_id=RECORD["id"]).status == "SUCCESS"


def test_a_duplicate_push_changes_nothing(client, source):
    push(client, source, RECORD)
    before = Task.objects.values().get(task_id=RECORD["id"])

    push(client, source, RECORD)

    assert Task.objects.values().get(task_id=RECORD["id"]) == before
    assert TaskEvent.objects.count() == 1


def test_a_wrong_token_gets_404_and_changes_nothing(client, source):
    response = push(client, source, RECORD, token="not-the-token")

    assert response.status_code == 404
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ([RECORD], "not a JSON object"),
        ({"status": "SUCCESS"}, "has no id"),
        (dict(RECORD, submitTime="soon"), "submitTime"),
    ],
)
def test_a_malformed_body_gets_400_with_the_reason_and_changes_nothing(
    client, source, body, reason
):
    response = push(client, source, body)

    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not Task.objects.exists()
    source.refresh_from_db()
    assert source.hooks_invalid == 1


def test_a_get_is_not_allowed(client, source):
    assert client.get(f"/hooks/mj/{source.hook_token}/").status_code == 405


def test_the_token_never_reaches_the_logs(client, source, caplog):
    with caplog.at_level(logging.INFO):
        push(client, source, b"{broken")

    handler_filter = logging.getLogger().handlers[0].filters[0]
    for record in caplog.records:
        handler_filter.filter(record)
        assert source.hook_token not in record.getMessage()


def test_hook_url_prints_the_path_as_its_last_line(source, capsys):
    call_command("hook_url", "--source", "pushy")

    assert capsys.readouterr().out.splitlines()[-1] == f"/hooks/mj/{source.hook_token}/"


@pytest.mark.slow
def test_the_simulator_drives_a_task_to_success_through_pushes_alone(live_server, source):
    url = f"{live_server.url}/hooks/mj/{source.hook_token}/"
    with Simulator(flavor="novicezk", secret="", notify_hook=url, speed=4).start(port=0) as sim:
        task_id = sim.submit(prompt="pushed all the way")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            task = Task.objects.filter(task_id=task_id).first()
            if task and task.status == "SUCCESS":
                break
            time.sleep(0.2)

    assert task is not None and task.status == "SUCCESS"
    assert SyncRun.objects.count() == 0
    statuses = list(task.events.order_by("seen", "pk").values_list("status", flat=True))
    assert statuses[0] in ("NOT_START", "SUBMITTED") and statuses[-1] == "SUCCESS"
    assert json.loads(task.raw) == sim.record(task_id)


# One decoding for the list and the hook (tasks/ingest/json_items.decode_item)

NAN_RECORD = (
    '{"id":"1700000000000302","action":"IMAGINE","status":"IN_PROGRESS",'
    '"progress":NaN,"submitTime":1700000000000}'
)


def test_a_nan_record_is_kept_invalid_by_the_hook_as_by_a_list_with_the_same_reason(
    client, fault_server
):
    from tasks.ingest.sync import sync_source
    from tasks.models import InvalidRecord
    from tests.faultserver import Reply

    listed = f"[{json.dumps(RECORD, ensure_ascii=False)},{NAN_RECORD}]".encode()
    fault_server.route("GET", "/mj/task/list", Reply(body=listed))
    fault_server.route("POST", "/mj/task/list-by-condition", Reply(body=b"[]"))
    polled = Source.objects.create(name="polled", base_url=fault_server.url)
    pushed = Source.objects.create(name="pushed", base_url="http://127.0.0.1:9")

    run = sync_source(polled, full=True)
    response = push(client, pushed, NAN_RECORD)

    assert (run.outcome, run.created, run.invalid) == ("ok", 1, 1), run.error
    from_list = InvalidRecord.objects.get(source=polled)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    reason = response.json()["error"]
    assert reason == from_list.reason == "NaN is not a JSON value"
    from_hook = InvalidRecord.objects.get(source=pushed)
    assert (from_hook.task_id, from_hook.reason) == (from_list.task_id, reason)
    assert from_hook.task_id == "1700000000000302"
    assert from_hook.raw == from_list.raw == NAN_RECORD  # its text, as received
    assert not Task.objects.filter(task_id="1700000000000302").exists()
    pushed.refresh_from_db()
    assert (pushed.hooks_invalid, pushed.hooks_received) == (1, 0)
