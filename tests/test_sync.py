"""The sync over real HTTP against the built-in proxy simulator."""

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.ingest.sync import claim_lease, ingest, refresh_tasks, release_lease, sync_source
from tasks.models import InvalidRecord, Source, SourceKind, SyncRun, Task, TaskEvent
from tests.conftest import make_task
from tests.faultserver import Reply

pytestmark = pytest.mark.django_db


def stored_raw(source):
    return {t.task_id: json.loads(t.raw) for t in Task.objects.filter(source=source)}


def calls_since(sim, start):
    """(method, path) of every request the simulator answered since requests_log[start]."""
    return [(method, urlsplit(path).path) for method, path, _ in sim.requests_log[start:]]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TEXT_FIELDS = {
    "action": "action",
    "status": "status",
    "prompt": "prompt",
    "promptEn": "prompt_en",
    "description": "description",
    "state": "state",
    "imageUrl": "image_url",
    "failReason": "fail_reason",
}
TIME_FIELDS = {"submitTime": "submitted", "startTime": "started", "finishTime": "finished"}
PERCENT = re.compile(r"([0-9]{1,3})%")


def expected_fields(record):
    """The typed fields a simulator record should give, worked out here from the record
    itself, not by the app's records.normalise: strings as sent (null: ""), epoch
    milliseconds as aware UTC datetimes (null or 0: not yet), "NN%" as the number NN."""
    expected = {}
    for key, field in TEXT_FIELDS.items():
        value = record.get(key)
        assert value is None or isinstance(value, str), (key, value)
        expected[field] = "" if value is None else value
    for key, field in TIME_FIELDS.items():
        ms = record.get(key)
        assert ms is None or (isinstance(ms, int) and (ms == 0 or ms > 10**12)), (key, ms)
        expected[field] = EPOCH + timedelta(milliseconds=ms) if ms else None
    progress = record.get("progress") or ""
    percent = PERCENT.fullmatch(progress)
    assert percent or progress == "", f"a progress this test cannot read: {progress!r}"
    expected["progress"] = progress
    expected["progress_pct"] = int(percent.group(1)) if percent else None
    expected["properties"] = record.get("properties") or {}
    return expected


def assert_mirrors(source, records):
    rows = {t.task_id: t for t in Task.objects.filter(source=source)}
    for record in records:
        task = rows[record["id"]]
        assert json.loads(task.raw) == record
        assert list(json.loads(task.raw)) == list(record)  # key order kept
        for field, value in expected_fields(record).items():
            assert getattr(task, field) == value, (record["id"], field)


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_a_first_full_sync_mirrors_every_task_field_for_field(start_sim, make_source, flavor):
    sim = start_sim(flavor, tasks=80)
    running = dict(sim.all_records()[-1], id="1700000000000555", progress="46%")
    sim.put(dict(running, status="IN_PROGRESS", finishTime=None, failReason=None))
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.created == 81
    assert Task.objects.filter(source=source).count() == 81
    records = sim.all_records()
    assert_mirrors(source, records)
    # The records hold every case the typing has to get right.
    expected = [expected_fields(r) for r in records]
    assert {e["progress_pct"] for e in expected} >= {None, 0, 46, 100}
    assert any(e["started"] is None for e in expected)
    assert any(e["finished"] is not None for e in expected)
    assert any(e["fail_reason"] for e in expected) and any(e["state"] for e in expected)


def test_a_relay_source_refreshes_the_tasks_it_knows_through_list_by_condition(
    start_sim, make_source, clock
):
    sim = start_sim("relay", tasks=20)
    source = make_source(sim, kind=SourceKind.RELAY)
    # A relay has no list: the mirror learns ids elsewhere (a hook, an earlier proxy).
    early = [
        dict(r, status="SUBMITTED", progress="0%", prompt="as first seen")
        for r in sim.all_records()[:5]
    ]
    ingest(source, early)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.updated == 5
    assert_mirrors(source, [sim.record(r["id"]) for r in early])


def test_a_relay_source_of_unknown_kind_fails_with_advice_about_the_html_page(
    start_sim, make_source
):
    sim = start_sim("relay", tasks=3)
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "returned an HTML page" in run.error
    assert "relay" in run.error


# A statement that writes to the task or event table (the lease and the SyncRun may change).
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|COPY|REPLACE)\b", re.IGNORECASE)
TASK_TABLES = re.compile(r"\btasks_task(event)?\b", re.IGNORECASE)


def task_writes(captured):
    return [q["sql"] for q in captured if WRITES.match(q["sql"]) and TASK_TABLES.search(q["sql"])]


SECOND_PASS_CASES = [
    ("novicezk", True, "novicezk-full"),
    ("trueai", True, "trueai-full"),
    ("relay", True, "relay"),
    ("novicezk", False, "novicezk-light"),
    ("trueai", False, "trueai-light"),
]
SECOND_PASSES = pytest.mark.parametrize(
    "flavor, full", [pytest.param(f, full, id=i) for f, full, i in SECOND_PASS_CASES]
)


def snapshot_tasks():
    return {t.pk: (t.raw, t.last_changed, t.in_queue, t.gone_since) for t in Task.objects.all()}


def second_pass(start_sim, make_source, flavor, full):
    """Mirror a simulator, then run the same kind of pass again with its SQL captured.

    Returns (run, captured queries, tasks before, events before).
    """
    sim = start_sim(flavor, tasks=60)
    for i in range(3):  # unfinished: the queue and list-by-condition have work every pass
        sim.submit(prompt=f"still running {i}")
    if flavor == "relay":
        # A relay has no list: the mirror knows the ids from elsewhere (hooks), as first seen.
        source = make_source(sim, kind=SourceKind.RELAY)
        early = [
            dict(r, status="SUBMITTED", progress="0%") if r["status"] == "SUCCESS" else r
            for r in sim.all_records()
        ]
        ingest(source, early)
    else:
        source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    if not full:
        assert sync_source(source).outcome == SyncRun.Outcome.OK  # the first light pass
    assert Task.objects.filter(source=source).count() == 63
    before, events = snapshot_tasks(), TaskEvent.objects.count()

    with CaptureQueriesContext(connection) as captured:
        run = sync_source(source, full=full)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    # The capture saw the pass's own queries: it read the task table.
    assert any(TASK_TABLES.search(q["sql"]) for q in captured), [q["sql"] for q in captured]
    return run, captured, before, events


@SECOND_PASSES
def test_a_second_sync_reports_everything_unchanged_and_writes_nothing(
    start_sim, make_source, flavor, full
):
    run, captured, before, events = second_pass(start_sim, make_source, flavor, full)

    assert (run.created, run.updated, run.stale, run.invalid, run.gone) == (0, 0, 0, 0, 0)
    assert run.unchanged == run.fetched > 0
    if full and flavor != "relay":
        assert run.fetched >= 60
    assert snapshot_tasks() == before
    assert TaskEvent.objects.count() == events
    # No statement inserts, updates or deletes a task or an event, not even one that
    # matches no row: on SQLite any UPDATE takes the database's single write lock, which
    # the notify-hook and other sources' passes wait for.
    assert task_writes(captured) == []


def test_a_pass_an_hour_later_records_when_each_task_was_last_seen_upstream(start_sim, make_source):
    sim = start_sim(tasks=30)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    hour_ago = timezone.now() - timedelta(minutes=61)
    Task.objects.filter(source=source).update(last_seen=hour_ago)
    forgotten = Task.objects.filter(source=source).first()
    sim.forget(forgotten.task_id)
    before = snapshot_tasks()

    run = sync_source(source, full=True)

    assert (run.created, run.updated, run.gone) == (0, 0, 1)
    seen = Task.objects.filter(source=source, gone_since__isnull=True)
    assert seen.count() == 29
    assert all(t.last_seen > hour_ago + timedelta(minutes=60) for t in seen)
    assert Task.objects.get(pk=forgotten.pk).last_seen == hour_ago  # not seen since
    after = snapshot_tasks()
    assert all(after[pk][:2] == before[pk][:2] for pk in before)  # raw, last_changed


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_progress_and_finishing_show_up_as_task_events(start_sim, make_source, clock, flavor):
    sim = start_sim(flavor)
    source = make_source(sim)
    task_id = sim.submit(action="IMAGINE", prompt="黄昏时的灯塔")
    statuses = []
    for i in range(60):
        # novicezk's queue brings a new task to a light pass; trueai has no queue, so its
        # first pass is a full one, the later ones go through list-by-condition.
        run = sync_source(source, full=flavor == "trueai" and i == 0)
        assert run.outcome == SyncRun.Outcome.OK, run.error
        statuses.append(Task.objects.get(task_id=task_id).status)
        if statuses[-1] == "SUCCESS":
            break
        clock.advance(3)

    task = Task.objects.get(task_id=task_id)
    assert task.status == "SUCCESS"
    assert task.progress_pct == 100
    timeline = list(task.events.order_by("seen", "pk").values_list("status", "progress"))
    assert timeline[0][0] in ("NOT_START", "SUBMITTED")
    assert ("SUCCESS", "100%") == timeline[-1]
    progress = [int(p.rstrip("%")) for s, p in timeline if s == "IN_PROGRESS" and p]
    assert len(progress) >= 2 and progress == sorted(progress)
    assert len(timeline) == len(set(timeline))  # an event is a change, never a repeat
    assert json.loads(task.raw) == sim.record(task_id)


def test_tasks_the_proxy_forgets_remain_marked_gone(start_sim, make_source):
    sim = start_sim("novicezk", tasks=10)
    source = make_source(sim)
    sync_source(source, full=True)
    forgotten = sim.all_records()[0]["id"]
    sim.forget_all()
    sim.submit(prompt="after the restart")

    run = sync_source(source, full=True)

    assert run.gone == 10
    assert Task.objects.filter(source=source).count() == 11
    task = Task.objects.get(task_id=forgotten)
    assert task.gone_since is not None
    assert json.loads(task.raw)["id"] == forgotten


@pytest.mark.parametrize(
    "kind, full", [(SourceKind.AUTO, True), (SourceKind.TRUEAI, False)], ids=["auto-full", "light"]
)
def test_trueai_tasks_the_proxy_forgets_remain_and_unfinished_ones_are_marked_gone(
    start_sim, make_source, kind, full
):
    # trueai's list holds the newest 100 only, so a task missing from it may merely be
    # old; a task list-by-condition leaves out is gone for sure.
    sim = start_sim("trueai", tasks=10)
    running = [sim.submit(prompt=f"running {i}") for i in range(3)]
    source = make_source(sim, kind=kind)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    unfinished = set(
        Task.objects.filter(source=source).unfinished().values_list("task_id", flat=True)
    )
    assert set(running) <= unfinished
    kept = {t.task_id: t.raw for t in Task.objects.filter(source=source)}
    sim.forget_all()
    sim.submit(prompt="after the restart")

    run = sync_source(source, full=full)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.gone == len(unfinished)
    assert Task.objects.filter(source=source).count() == 13 + full
    for task in Task.objects.filter(source=source, task_id__in=kept):
        assert task.raw == kept[task.task_id]  # nothing lost
        if task.task_id in unfinished:
            assert task.gone_since is not None
            assert not task.in_queue
        else:
            assert task.gone_since is None  # finished, and maybe just out of the 100


def stale_pair(flavor, done):
    """A finished record and the same task as an older, still running record."""
    behind = dict(done, status="IN_PROGRESS", progress="46%", finishTime=None)
    if flavor == "trueai":
        done = dict(done, isCompleted=True, displays={"status": "成功"})
        behind = dict(behind, isCompleted=False, displays={"status": "执行中"})
    return done, behind


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_a_stale_record_never_undoes_a_newer_one(start_sim, make_source, flavor):
    sim = start_sim(flavor)
    source = make_source(sim)
    done, behind = stale_pair(
        flavor,
        {
            "id": "1700000000000123",
            "action": "IMAGINE",
            "status": "SUCCESS",
            "prompt": "猫猫",
            "progress": "100%",
            "submitTime": 1700000000000,
            "finishTime": 1700000060000,
            "imageUrl": "https://cdn.discordapp.com/attachments/1/2/a.png",
        },
    )
    sim.put(done)
    sync_source(source, full=True)
    events = TaskEvent.objects.count()

    sim.put(behind)
    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.stale >= 1
    task = Task.objects.get(task_id=done["id"])
    assert task.status == "SUCCESS"
    assert json.loads(task.raw) == done
    assert TaskEvent.objects.count() == events


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_lower_progress_in_the_same_status_is_stale_too(start_sim, make_source, flavor):
    sim = start_sim(flavor)
    source = make_source(sim)
    record = {"id": "1700000000000124", "status": "IN_PROGRESS", "progress": "62%"}
    if flavor == "trueai":
        record["isCompleted"] = False
    sim.put(record)
    sync_source(source, full=True)
    sim.put(dict(record, progress="31%"))

    run = sync_source(source, full=True)

    assert run.stale >= 1
    task = Task.objects.get(task_id=record["id"])
    assert task.progress == "62%"
    assert json.loads(task.raw) == record


def test_unfinished_tasks_that_fell_out_of_a_short_list_are_finished_by_id(
    start_sim, make_source, clock
):
    sim = start_sim("trueai")
    source = make_source(sim)
    early = [sim.submit(prompt=f"early {i}") for i in range(5)]
    sync_source(source, full=True)
    assert Task.objects.filter(task_id__in=early).exclude(status="SUCCESS").count() == 5
    for i in range(120):  # push the early tasks out of trueai's newest-100 list
        sim.submit(prompt=f"later {i}")
    clock.advance(600)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert all(r["id"] not in early for r in sim.records())
    for task in Task.objects.filter(task_id__in=early):
        assert task.status in ("SUCCESS", "FAILURE")
        assert json.loads(task.raw) == sim.record(task.task_id)
    assert Task.objects.filter(gone_since__isnull=False).count() == 0


def test_the_queue_marks_waiting_and_running_tasks(start_sim, make_source, clock):
    sim = start_sim("novicezk")
    source = make_source(sim)
    task_id = sim.submit(prompt="queued")
    sync_source(source)
    assert Task.objects.get(task_id=task_id).in_queue
    clock.advance(600)

    sync_source(source)

    assert not Task.objects.get(task_id=task_id).in_queue


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("secret", "401"),
        ("html", "returned an HTML page"),
        ("server_error", "500"),
        ("timeout", "did not answer within"),
        ("refused", "cannot connect"),
    ],
)
def test_a_broken_proxy_fails_the_pass_with_a_clear_message_and_loses_nothing(
    start_sim, make_source, breakage, message, settings, capsys, fault_server
):
    sim = start_sim("novicezk", tasks=15)
    source = make_source(sim)
    sync_source(source, full=True)
    before = stored_raw(source)
    if breakage == "secret":
        source.secret = "wrong"
    elif breakage == "html":
        source.base_url = start_sim("relay").url
    elif breakage == "server_error":
        source.base_url = fault_server.url
        fault_server.everywhere(Reply(500, b"java.lang.NullPointerException", {}))
    elif breakage == "timeout":
        settings.MJ_READ_TIMEOUT = 0.5
        source.base_url = fault_server.url
        fault_server.everywhere(Reply(delay=2))
    elif breakage == "refused":
        source.base_url = "http://127.0.0.1:9"
    source.save()

    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_tasks", "--full", "--source", source.name)

    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err
    run = SyncRun.objects.filter(source=source).latest("started")
    assert run.outcome == SyncRun.Outcome.FAILED
    assert message in run.error
    assert "s3cret" not in run.error and "wrong" not in run.error
    assert stored_raw(source) == before


def test_malformed_records_are_counted_kept_raw_and_the_rest_goes_on(start_sim, make_source):
    sim = start_sim("novicezk", tasks=5)
    sim.put({"id": "1700000000000200", "status": "SUCCESS", "submitTime": "yesterday"})
    sim.put({"id": "1700000000000201", "status": ["SUCCESS"]})
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK
    assert run.invalid == 2
    assert run.created == 5
    bad = {r.task_id: r for r in InvalidRecord.objects.filter(source=source)}
    assert "submitTime" in bad["1700000000000200"].reason
    assert json.loads(bad["1700000000000201"].raw)["status"] == ["SUCCESS"]


def test_only_one_pass_per_source_runs_at_a_time(start_sim, make_source):
    sim = start_sim("novicezk", tasks=3)
    source = make_source(sim)
    assert claim_lease(source, "someone else")

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.SKIPPED
    assert Task.objects.count() == 0
    release_lease(source, "someone else")
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK


def test_sync_tasks_prints_one_summary_line_per_source(start_sim, make_source, capsys):
    sim = start_sim("novicezk", tasks=4)
    make_source(sim)

    call_command("sync_tasks", "--full")

    line = capsys.readouterr().out.strip()
    assert line.startswith("novicezk: ok full pass, fetched=")
    counts = dict(word.split("=") for word in line.split(", ", 1)[1].split(" in ")[0].split())
    assert set(counts) == {"fetched", "created", "updated", "unchanged", "stale", "invalid", "gone"}
    assert counts["created"] == "4" and counts["invalid"] == "0"


def test_sync_tasks_creates_the_default_source_from_mj_proxy_url(start_sim, settings, capsys):
    sim = start_sim("novicezk", tasks=2)
    settings.MJ_PROXY_URL = sim.url
    settings.MJ_API_SECRET = sim.secret

    call_command("sync_tasks", "--full")

    source = Source.objects.get(name="default")
    assert source.base_url == sim.url
    assert Task.objects.filter(source=source).count() == 2


def test_migrate_creates_the_sync_schedules_and_does_not_duplicate_them(db, settings):
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    settings.MJ_SYNC_MINUTES = 7
    settings.MJ_FULL_SYNC_MINUTES = 45

    call_command("migrate", verbosity=0)  # post_migrate runs even with nothing to apply
    call_command("migrate", verbosity=0)

    names = list(Schedule.objects.values_list("name", flat=True))
    assert len(names) == len(set(names))
    assert {"mjsite: full sync", "mjsite: light sync"} <= set(names)
    light = Schedule.objects.get(name="mjsite: light sync")
    full = Schedule.objects.get(name="mjsite: full sync")
    assert (light.func, light.schedule_type, light.minutes) == (
        "tasks.ingest.sync.light_pass",
        Schedule.MINUTES,
        7,
    )
    assert (full.func, full.schedule_type, full.minutes) == (
        "tasks.ingest.sync.full_pass",
        Schedule.MINUTES,
        45,
    )
    assert light.repeats < 0 and full.repeats < 0  # forever


def test_an_integer_beyond_64_bits_in_the_list_is_kept_exactly(start_sim, make_source):
    sim = start_sim("novicezk", tasks=3)
    record = {"id": "1700000000000400", "status": "SUCCESS", "seed": 2**80 + 1}
    sim.put(record)
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert json.loads(Task.objects.get(task_id=record["id"]).raw)["seed"] == 2**80 + 1


# A light pass without a queue endpoint


def test_a_light_pass_against_trueai_skips_the_missing_queue_and_refreshes_by_id(
    start_sim, make_source, clock
):
    sim = start_sim("trueai", tasks=10)
    running = [sim.submit(prompt=f"light {i}") for i in range(3)]
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    assert Task.objects.filter(task_id__in=running).unfinished().count() == 3
    assert all(t.in_queue for t in Task.objects.filter(task_id__in=running))
    clock.advance(600)
    start = len(sim.requests_log)

    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.kind == SyncRun.Kind.LIGHT
    calls = calls_since(sim, start)
    assert calls.count(("GET", "/mj/task/queue")) == 1  # asked, and its 404 is no failure
    assert ("GET", "/mj/task/list") not in calls
    assert calls.count(("POST", "/mj/task/list-by-condition")) == 1
    assert run.updated >= 3 and run.gone == 0
    for task in Task.objects.filter(task_id__in=running):
        assert task.status in ("SUCCESS", "FAILURE")
        assert json.loads(task.raw) == sim.record(task.task_id)
        assert not task.in_queue
        assert task.events.filter(status=task.status).exists()


# "Refresh from proxy": GET /fetch per id


FLAVORS = ["novicezk", "trueai", "relay"]


def source_for(make_source, sim):
    kind = SourceKind.RELAY if sim.flavor == "relay" else SourceKind.AUTO
    return make_source(sim, kind=kind)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_refresh_tasks_fetches_each_id_moves_forward_only_and_marks_unknown_ids_gone(
    start_sim, make_source, clock, flavor
):
    sim = start_sim(flavor)
    source = source_for(make_source, sim)
    running = sim.submit(prompt="refresh me")
    done, behind = stale_pair(
        flavor,
        {
            "id": "1700000000000123",
            "action": "UPSCALE",
            "status": "SUCCESS",
            "prompt": "灯塔",
            "progress": "100%",
            "submitTime": 1700000000000,
            "finishTime": 1700000060000,
        },
    )
    sim.put(done)
    unknown = make_task(source, task_id="1700000000000777").task_id  # the proxy never had it
    ingest(source, [sim.record(running), sim.record(done["id"])])  # as a hook brought them
    assert Task.objects.get(task_id=running).status not in ("SUCCESS", "FAILURE")
    clock.advance(600)  # the running task finishes upstream
    sim.put(behind)  # and the finished one goes backwards there
    ids = [running, done["id"], unknown]
    start = len(sim.requests_log)

    run = refresh_tasks(source, ids)

    assert isinstance(run, SyncRun) and run.pk
    assert run.outcome == SyncRun.Outcome.OK, run.error
    # One GET /fetch per id, in order, and nothing else (no list-by-condition).
    assert calls_since(sim, start) == [("GET", f"/mj/task/{i}/fetch") for i in ids]
    assert (run.fetched, run.updated, run.stale, run.gone) == (2, 1, 1, 1)
    assert (run.created, run.invalid) == (0, 0)

    advanced = Task.objects.get(source=source, task_id=running)
    assert advanced.status in ("SUCCESS", "FAILURE")
    assert json.loads(advanced.raw) == sim.record(running)
    assert advanced.events.filter(status=advanced.status).exists()
    assert advanced.gone_since is None

    finished = Task.objects.get(source=source, task_id=done["id"])
    assert finished.status == "SUCCESS"
    assert json.loads(finished.raw) == done
    assert finished.gone_since is None

    gone = Task.objects.get(source=source, task_id=unknown)
    assert gone.gone_since is not None
    assert not gone.in_queue
    assert gone.status == "SUCCESS"  # kept as it was


def test_refresh_tasks_keeps_the_first_gone_since_and_brings_a_task_back(
    start_sim, make_source, clock
):
    sim = start_sim("novicezk", tasks=3)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    record = sim.all_records()[0]
    sim.forget(record["id"])

    first = refresh_tasks(source, [record["id"]])
    since = Task.objects.get(task_id=record["id"]).gone_since
    clock.advance(60)
    again = refresh_tasks(source, [record["id"]])

    assert first.outcome == again.outcome == SyncRun.Outcome.OK
    assert first.gone == 1
    assert since is not None
    assert Task.objects.get(task_id=record["id"]).gone_since == since  # not moved forward

    sim.put(record)  # the proxy knows it again
    back = refresh_tasks(source, [record["id"]])

    assert back.outcome == SyncRun.Outcome.OK, back.error
    assert (back.fetched, back.unchanged, back.gone) == (1, 1, 0)
    task = Task.objects.get(task_id=record["id"])
    assert task.gone_since is None
    assert json.loads(task.raw) == record


def test_refresh_tasks_goes_through_fetch_even_behind_a_fault_server(
    start_sim, make_source, fault_server
):
    # The fault server passes everything on to the simulator and logs what it was asked.
    sim = start_sim("novicezk", tasks=5)
    fault_server.upstream = sim.url
    source = make_source(sim, base_url=fault_server.url)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    ids = [r["id"] for r in sim.all_records()[:3]]
    fault_server.requests.clear()

    run = refresh_tasks(source, ids)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert [(r[0], r[1]) for r in fault_server.requests] == [
        ("GET", f"/mj/task/{i}/fetch") for i in ids
    ]
    assert all(r[2].get("mj-api-secret") == sim.secret for r in fault_server.requests)
    assert (run.fetched, run.unchanged) == (3, 3)


def test_refresh_tasks_fails_with_the_proxys_reason_and_changes_nothing(
    start_sim, make_source, fault_server
):
    sim = start_sim("novicezk", tasks=3)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    before = stored_raw(source)
    task_id = next(iter(before))
    fault_server.route("GET", f"/mj/task/{task_id}/fetch", Reply(500, b"boom", {}))
    source.base_url = fault_server.url
    source.save()

    run = refresh_tasks(source, [task_id])

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "500 from" in run.error and "boom" in run.error_detail  # the body: staff only
    assert stored_raw(source) == before
    assert not Task.objects.filter(gone_since__isnull=False).exists()


def test_an_unfinished_task_answered_with_an_invalid_record_is_not_marked_gone(
    start_sim, make_source, fault_server
):
    # The proxy still has the task: list-by-condition answers for it, with a NaN inside.
    sim = start_sim("novicezk")
    task_id = sim.submit(prompt="still running")
    source = make_source(sim)
    assert sync_source(source).outcome == SyncRun.Outcome.OK
    assert Task.objects.get(source=source, task_id=task_id).in_queue
    fault_server.upstream = sim.url
    broken = f'[{{"id":"{task_id}","status":"IN_PROGRESS","progress":NaN}}]'.encode()
    fault_server.route("POST", "/mj/task/list-by-condition", Reply(body=broken))
    fault_server.route("GET", "/mj/task/queue", Reply(body=broken))
    source.base_url = fault_server.url
    source.save()

    run = sync_source(source)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert (run.invalid, run.gone) == (2, 0)
    task = Task.objects.get(source=source, task_id=task_id)
    assert task.gone_since is None
    assert task.in_queue  # the queue answered for it too
