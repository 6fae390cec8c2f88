"""new-api relays as a source kind, over real HTTP against the simulator's newapi flavor:
its admin list /api/mj/ paged in both envelopes, by submit time, rows kept as sent."""

import io
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tasks.bootstrap import ensure_default_source
from tasks.ingest.relay_rows import task_shape
from tasks.ingest.sync import refresh_tasks, sync_source
from tasks.models import Source, SourceKind, SyncRun, Task
from tasks.redaction import secret_values
from tasks.simulator import Simulator
from tasks.simulator.newapi import ADMIN_USER, KEY_OWNER, user_of

pytestmark = pytest.mark.django_db

USER_KEY = "sk-relay-user-key"
ADMIN_TOKEN = "relay-admin-access-token"
WRONG_TOKEN = "not-the-admin-token-7f3a9c"


@pytest.fixture
def relay(clock):
    """Start a newapi simulator; stopped after the test."""
    started = []

    def start(tasks=0, envelope="new", **kwargs):
        sim = Simulator(
            flavor="newapi", secret=USER_KEY, tasks=tasks, seed=7, clock=clock,
            newapi_envelope=envelope, admin_token=ADMIN_TOKEN, **kwargs,
        )  # fmt: skip
        started.append(sim.start(host="127.0.0.1", port=0))
        return sim

    yield start
    for sim in started:
        sim.stop()


def relay_source(sim, **fields):
    defaults = {
        "name": "relay",
        "base_url": sim.url,
        "kind": SourceKind.NEWAPI,
        "secret": f"Bearer {USER_KEY}",
        "auth_header": "Authorization",
        "admin_token": ADMIN_TOKEN,
        "admin_user": ADMIN_USER,
    }
    defaults.update(fields)
    return Source.objects.create(**defaults)


def list_calls(sim, since=0):
    """The query of every admin list request since requests_log[since], with its headers."""
    calls = []
    for method, target, headers in sim.requests_log[since:]:
        parts = urlsplit(target)
        if method == "GET" and parts.path == "/api/mj/":
            calls.append((parse_qs(parts.query), headers))
    return calls


def rows_as_sent(sim, mj_id):
    """The relay's row of one task, as the exact text of its admin list answer."""
    answer = requests.get(
        f"{sim.url}/api/mj/?mj_id={mj_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "New-Api-User": ADMIN_USER},
        timeout=5,
    ).text
    start = answer.index('"items":[') + len('"items":[')
    return answer[start : answer.rindex("]}}")]


def mirrored_ids(source):
    return list(Task.objects.filter(source=source).values_list("task_id", flat=True))


def test_a_10000_task_relay_is_mirrored_whole_then_read_incrementally(relay):
    sim = relay(tasks=10_000)
    source = relay_source(sim)

    first = sync_source(source)

    assert first.outcome == SyncRun.Outcome.OK, first.error
    ids = mirrored_ids(source)
    assert len(ids) == len(set(ids)) == 10_000
    assert set(ids) == {str(r["id"]) for r in sim.all_records()}
    assert (first.created, first.updated, first.invalid) == (10_000, 0, 0)
    calls = list_calls(sim)
    assert len(calls) == 100  # 100 rows a page, the whole history
    assert all("start_timestamp" not in query for query, _ in calls)
    for query, headers in calls:
        assert headers["Authorization"] == f"Bearer {ADMIN_TOKEN}"
        assert headers["New-Api-User"] == ADMIN_USER
        assert query["page_size"] == ["100"]
    assert [query["p"][0] for query, _ in calls[:3]] == ["0", "2", "3"]

    since = len(sim.requests_log)
    second = sync_source(source)

    assert second.outcome == SyncRun.Outcome.OK, second.error
    assert (second.created, second.updated) == (0, 0)
    incremental = list_calls(sim, since)
    assert incremental and all("start_timestamp" in query for query, _ in incremental)
    assert len(incremental) < 10  # the last minutes of submissions, not the history

    full = sync_source(source, full=True)
    assert (full.created, full.updated, full.gone) == (0, 0, 0)


def test_rows_written_between_two_page_fetches_are_not_lost(relay, clock):
    sim = relay(tasks=1_000)
    source = relay_source(sim)
    newest = max(r["submitTime"] for r in sim.all_records())
    added = []

    def between_pages(query):
        if query.get("p") == ["3"] and not added:
            # A task submitted now, and one the relay wrote late: an older submit time, a
            # higher row id. Both land on page 1, which this pass has read already.
            added.append(sim.submit(prompt="written mid-pass"))
            added.append(sim.submit(prompt="late commit", submitTime=newest - 120_000))

    sim.relay_table.before_page = between_pages
    first = sync_source(source)

    assert first.outcome == SyncRun.Outcome.OK, first.error
    assert len(added) == 2
    original = {str(r["id"]) for r in sim.all_records()} - set(added)
    ids = mirrored_ids(source)
    assert len(ids) == len(set(ids))
    assert original <= set(ids)  # the rows pushed down a page were read again, once
    assert first.created == len(ids)

    sim.relay_table.before_page = None
    clock.advance(30)
    second = sync_source(source)

    assert second.outcome == SyncRun.Outcome.OK, second.error
    assert set(added) <= set(mirrored_ids(source))
    assert Task.objects.filter(source=source).count() == 1_002
    third = sync_source(source)
    assert (third.created, third.updated) == (0, 0)


def test_the_older_envelope_is_paged_from_0_ten_rows_a_page(relay):
    sim = relay(tasks=95, envelope="old")
    source = relay_source(sim)

    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert set(mirrored_ids(source)) == {str(r["id"]) for r in sim.all_records()}
    pages = [query["p"][0] for query, _ in list_calls(sim)]
    assert pages == [str(p) for p in range(11)]  # ten pages of rows, then an empty one
    assert sync_source(source).created == 0


def test_each_task_keeps_the_relays_row_as_sent_and_is_typed_from_its_task_shape(relay):
    sim = relay(tasks=30)
    source = relay_source(sim)
    sync_source(source)

    for task in Task.objects.filter(source=source):
        row_text = rows_as_sent(sim, task.task_id)
        assert task.raw == row_text  # byte for byte, "\u0026" escapes and all
        row = json.loads(row_text)
        assert task.status == row["status"]
        assert task.prompt == row["prompt"]
        assert task.image_url == row["image_url"]
        assert int(task.submitted.timestamp() * 1000) == row["submit_time"]
        assert task.properties == json.loads(row["properties"])
        assert task.caller == str(row["user_id"]) or task.caller == ""


def test_the_api_serves_relay_tasks_in_the_proxys_task_shape(relay, admin_client):
    sim = relay(tasks=12)
    source = relay_source(sim)
    sync_source(source)
    task = Task.objects.filter(source=source, status="SUCCESS").first()
    row = json.loads(task.raw)

    fetched = admin_client.get(f"/mj/task/{task.task_id}/fetch").json()
    listed = admin_client.get("/mj/task/list").json()

    assert fetched["id"] == row["mj_id"] == task.task_id
    assert fetched["submitTime"] == row["submit_time"]
    assert fetched["imageUrl"] == row["image_url"]
    assert fetched["promptEn"] == row["prompt_en"]
    assert fetched["buttons"] == json.loads(row["buttons"])
    assert fetched["properties"] == json.loads(row["properties"])
    assert fetched["userId"] == str(row["user_id"])
    assert "mj_id" not in fetched and "user_id" not in fetched
    assert {t["id"] for t in listed} == set(mirrored_ids(source))
    assert all("mj_id" not in t for t in listed)
    by_ids = admin_client.post(
        "/mj/task/list-by-condition", {"ids": [task.task_id]}, content_type="application/json"
    ).json()
    assert by_ids == [fetched]


def test_a_wrong_admin_token_fails_the_pass_clearly_and_the_token_goes_nowhere(
    relay, caplog, capsys
):
    sim = relay(tasks=5)
    source = relay_source(sim, admin_token=WRONG_TOKEN)

    with caplog.at_level(logging.DEBUG):
        run = sync_source(source)
        err = io.StringIO()
        with pytest.raises(SystemExit):
            call_command("sync_tasks", "--source", "relay", stdout=io.StringIO(), stderr=err)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "401" in run.error and "admin token" in run.error and "New-Api-User" in run.error
    dump = io.StringIO()
    call_command("dumpdata", "tasks.syncrun", "tasks.invalidrecord", "tasks.task", stdout=dump)
    assert WRONG_TOKEN not in dump.getvalue()
    assert WRONG_TOKEN not in caplog.text
    assert "admin token" in err.getvalue() and WRONG_TOKEN not in err.getvalue()
    assert WRONG_TOKEN not in "".join(capsys.readouterr())
    assert Task.objects.count() == 0


def test_an_older_relay_refusing_with_http_200_fails_the_pass_clearly(relay):
    sim = relay(tasks=5, envelope="old")
    run = sync_source(relay_source(sim, admin_token=WRONG_TOKEN))

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "success: false" in run.error and "admin token" in run.error
    assert WRONG_TOKEN not in run.error + run.error_detail


def test_a_missing_admin_user_is_refused_with_advice(relay):
    sim = relay(tasks=5)
    run = sync_source(relay_source(sim, admin_user=""))

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "401" in run.error and "New-Api-User" in run.error


def test_a_server_without_the_admin_list_fails_with_advice(start_sim):
    sim = start_sim("relay", tasks=3)  # a relay of another kind: HTML for unknown paths
    run = sync_source(relay_source(sim))

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "is not new-api's admin list" in run.error and "kind" in run.error


def test_a_relay_source_without_admin_token_says_what_to_set(relay):
    sim = relay(tasks=2)
    run = sync_source(relay_source(sim, admin_token=""))

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "no admin token" in run.error and "MJ_ADMIN_TOKEN" in run.error


def test_unfinished_tasks_older_than_the_window_are_refreshed_by_mj_id(relay, clock):
    sim = relay(tasks=0)
    now = clock.now_ms()
    slow = {"id": "1700000000000001", "action": "IMAGINE", "status": "IN_PROGRESS",
            "progress": "40%", "submitTime": now - 3 * 3600_000, "prompt": "slow one"}  # fmt: skip
    sim.put(slow)
    for _ in range(3):
        sim.submit(prompt="newer")
        clock.advance(1)
    source = relay_source(sim)
    sync_source(source)
    assert Task.objects.get(source=source, task_id=slow["id"]).status == "IN_PROGRESS"

    sim.put({**slow, "status": "SUCCESS", "progress": "100%", "finishTime": now})
    since = len(sim.requests_log)
    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert (run.updated, run.created) == (1, 0)
    assert Task.objects.get(source=source, task_id=slow["id"]).status == "SUCCESS"
    assert [q["mj_id"] for q, _ in list_calls(sim, since) if "mj_id" in q] == [[slow["id"]]]


def test_the_refresh_button_reads_the_admin_list_and_keeps_the_row(relay, clock):
    sim = relay(tasks=0)
    task_id = sim.submit(prompt="refresh me")
    foreign = [t for t in (sim.submit(prompt=f"n{i}") for i in range(12)) if user_of(t) != 1]
    source = relay_source(sim)
    sync_source(source)
    clock.advance(24 * 3600)

    run = refresh_tasks(source, [task_id, foreign[0], "1234567890"])

    assert run.outcome == SyncRun.Outcome.OK, run.error
    task = Task.objects.get(source=source, task_id=task_id)
    assert task.raw == rows_as_sent(sim, task_id)
    assert task.status in ("SUCCESS", "FAILURE")
    # Another user's task is found too: the admin list holds every user's.
    assert Task.objects.get(source=source, task_id=foreign[0]).status in ("SUCCESS", "FAILURE")
    assert run.gone == 0  # the unknown id was never stored


def test_the_simulated_relay_answers_a_user_key_with_that_users_tasks_only(relay):
    sim = relay(tasks=40)
    mine = [str(r["id"]) for r in sim.all_records() if user_of(r["id"]) == KEY_OWNER]
    theirs = [str(r["id"]) for r in sim.all_records() if user_of(r["id"]) != KEY_OWNER]
    key = {"Authorization": f"Bearer {USER_KEY}"}

    own = requests.get(f"{sim.url}/mj/task/{mine[0]}/fetch", headers=key, timeout=5)
    other = requests.get(f"{sim.url}/mj/task/{theirs[0]}/fetch", headers=key, timeout=5)
    listed = requests.post(
        f"{sim.url}/mj/task/list-by-condition",
        json={"ids": mine[:2] + theirs[:2]},
        headers=key,
        timeout=5,
    )
    html = requests.get(f"{sim.url}/mj/task/list", headers=key, timeout=5)
    moved = requests.get(f"{sim.url}/api/mj?p=1", allow_redirects=False, timeout=5)

    assert own.status_code == 200 and own.json()["id"] == mine[0]
    assert other.status_code == 400 and other.json()["description"] == "task_no_found "
    assert sorted(t["id"] for t in listed.json()) == sorted(mine[:2])
    assert "text/html" in html.headers["Content-Type"]
    assert moved.status_code == 301 and moved.headers["Location"] == "/api/mj/?p=1"


def test_the_admin_token_is_masked_like_the_secret(relay, admin_client):
    sim = relay(tasks=0)
    sim.submit(prompt=f"leaked {ADMIN_TOKEN} here")
    source = relay_source(sim)
    sync_source(source)

    assert ADMIN_TOKEN in secret_values()
    body = admin_client.get("/mj/task/list").content.decode()
    assert "leaked ••• here" in body and ADMIN_TOKEN not in body
    task = Task.objects.get(source=source)
    assert ADMIN_TOKEN not in admin_client.get(f"/tasks/{task.task_id}/").content.decode()
    assert ADMIN_TOKEN not in admin_client.get("/tasks/").content.decode()


def source_form(**overrides):
    data = {
        "name": "relay",
        "base_url": "http://127.0.0.1:9",
        "secret": "",
        "auth_header": "Authorization",
        "kind": "newapi",
        "enabled": "on",
        "admin_token": "",
        "admin_user": "1",
    }
    data.update(overrides)
    return data


def test_the_source_form_asks_a_relay_for_its_admin_credential(admin_client):
    add = reverse("admin:tasks_source_add")

    page = admin_client.get(add).content.decode()
    refused = admin_client.post(add, source_form())
    bad_user = admin_client.post(add, source_form(admin_token="tok-1", admin_user="root"))
    saved = admin_client.post(add, source_form(admin_token="tok-1"))

    assert "New-Api-User" in page and "/api/mj/" in page
    assert refused.status_code == 200 and "give an admin" in refused.content.decode()
    assert bad_user.status_code == 200 and "is a number" in bad_user.content.decode()
    assert saved.status_code == 302
    source = Source.objects.get(name="relay")
    assert (source.kind, source.admin_token, source.admin_user) == ("newapi", "tok-1", "1")


def test_the_admin_token_is_write_only_in_the_source_form(admin_client):
    source = Source.objects.create(
        name="relay", base_url="http://127.0.0.1:9", kind="newapi",
        admin_token="tok-secret-5551", admin_user="1",
    )  # fmt: skip
    change = reverse("admin:tasks_source_change", args=[source.pk])

    assert "tok-secret-5551" not in admin_client.get(change).content.decode()
    assert (
        "tok-secret-5551"
        not in admin_client.get(reverse("admin:tasks_source_changelist")).content.decode()
    )
    kept = admin_client.post(change, source_form())
    assert kept.status_code == 302
    source.refresh_from_db()
    assert source.admin_token == "tok-secret-5551"

    viewer = User.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(viewer)
    shown = client.get(change).content.decode()
    assert shown.count("•••") >= 1 and "tok-secret-5551" not in shown
    assert 'name="admin_token"' not in shown


def test_the_default_source_takes_its_kind_and_admin_credential_from_settings(settings):
    settings.MJ_PROXY_URL = "http://127.0.0.1:9"
    settings.MJ_PROXY_KIND = "newapi"
    settings.MJ_ADMIN_TOKEN = "env-admin-token"
    settings.MJ_ADMIN_USER = "7"

    source = ensure_default_source()

    assert (source.kind, source.admin_token, source.admin_user) == (
        "newapi",
        "env-admin-token",
        "7",
    )
    settings.MJ_PROXY_KIND = "newapi-ish"
    with pytest.raises(ImproperlyConfigured, match="MJ_PROXY_KIND"):
        ensure_default_source()


@pytest.mark.parametrize(
    "row",
    [
        None,
        [],
        "text",
        3,
        {},
        {"mj_id": None},
        {"mj_id": ["x"], "buttons": {"a": 1}},
        {"mj_id": "1", "buttons": "[{", "properties": "[1, 2]", "video_urls": "NaN"},
        {"mj_id": "1", "properties": "[" * 5000 + "]" * 5000, "user_id": True},
        {"mj_id": "1", "buttons": 7, "properties": 8, "video_urls": [1, {"url": "u"}]},
    ],
)
def test_an_odd_row_never_breaks_the_task_shape(row):
    shaped = task_shape(row)
    if isinstance(row, dict):
        assert shaped.get("id") == row.get("mj_id")
        assert shaped["buttons"] is None or isinstance(shaped["buttons"], list)
        assert shaped["properties"] is None or isinstance(shaped["properties"], dict)
    else:
        assert shaped == row


def test_a_rows_json_text_fields_become_the_tasks_values():
    row = {
        "id": 88, "code": 1, "user_id": 3, "action": "VIDEO", "mj_id": "1754380000123456",
        "prompt": "p", "prompt_en": "pe", "description": "d", "state": "", "submit_time": 1,
        "start_time": 2, "finish_time": 3, "image_url": "https://x/i.png",
        "video_url": "https://x/v.mp4", "video_urls": '[{"url":"https://x/0.mp4"}]',
        "status": "SUCCESS", "progress": "100%", "fail_reason": "", "channel_id": 5,
        "quota": 25000, "buttons": '[{"customId":"MJ::JOB::upsample::1::a","label":"U1"}]',
        "properties": '{"finalPrompt":"f","finalZhPrompt":""}',
    }  # fmt: skip

    assert task_shape(row) == {
        "id": "1754380000123456", "action": "VIDEO", "customId": "", "botType": "",
        "prompt": "p", "promptEn": "pe", "description": "d", "state": "", "submitTime": 1,
        "startTime": 2, "finishTime": 3, "imageUrl": "https://x/i.png",
        "videoUrl": "https://x/v.mp4", "videoUrls": [{"url": "https://x/0.mp4"}],
        "status": "SUCCESS", "progress": "100%", "failReason": "",
        "buttons": [{"customId": "MJ::JOB::upsample::1::a", "label": "U1"}],
        "maskBase64": "", "properties": {"finalPrompt": "f", "finalZhPrompt": ""},
        "userId": "3",
    }  # fmt: skip
