"""The sync over real HTTP against the built-in proxy simulator."""

import json

import pytest
from django.core.management import call_command

from tasks.models import InvalidRecord, Source, SourceKind, SyncRun, Task, TaskEvent
from tasks.records import normalise
from tasks.sync import claim_lease, ingest, release_lease, sync_source

from .faultserver import Reply

pytestmark = pytest.mark.django_db


def stored_raw(source):
    return {t.task_id: json.loads(t.raw) for t in Task.objects.filter(source=source)}


def assert_mirrors(source, records):
    rows = {t.task_id: t for t in Task.objects.filter(source=source)}
    for record in records:
        task = rows[record["id"]]
        assert json.loads(task.raw) == record
        assert list(json.loads(task.raw)) == list(record)  # key order kept
        typed = normalise(record)
        for field in ("action", "status", "prompt", "prompt_en", "description", "progress"):
            assert getattr(task, field) == getattr(typed, field)
        assert task.submitted == typed.submitted
        assert task.started == typed.started
        assert task.finished == typed.finished
        assert task.properties == typed.properties
        assert task.progress_pct == typed.progress_pct
        assert task.image_url == typed.image_url


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_a_first_full_sync_mirrors_every_task_field_for_field(start_sim, make_source, flavor):
    sim = start_sim(flavor, tasks=80)
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert run.created == 80
    assert Task.objects.filter(source=source).count() == 80
    assert_mirrors(source, sim.all_records())


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


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_a_second_sync_reports_everything_unchanged_and_writes_nothing(
    start_sim, make_source, flavor, django_assert_max_num_queries
):
    sim = start_sim(flavor, tasks=60)
    source = make_source(sim)
    sync_source(source, full=True)
    before = {t.pk: (t.raw, t.last_changed) for t in Task.objects.all()}
    events = TaskEvent.objects.count()

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert (run.created, run.updated, run.stale, run.invalid) == (0, 0, 0, 0)
    assert run.unchanged == run.fetched > 0
    assert {t.pk: (t.raw, t.last_changed) for t in Task.objects.all()} == before
    assert TaskEvent.objects.count() == events


def test_progress_and_finishing_show_up_as_task_events(start_sim, make_source, clock):
    sim = start_sim("novicezk")
    source = make_source(sim)
    task_id = sim.submit(action="IMAGINE", prompt="黄昏时的灯塔")
    statuses = []
    for _ in range(60):
        run = sync_source(source)
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


def test_a_stale_record_never_undoes_a_newer_one(start_sim, make_source):
    sim = start_sim("novicezk")
    source = make_source(sim)
    done = {
        "id": "1700000000000123",
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": "猫猫",
        "progress": "100%",
        "submitTime": 1700000000000,
        "finishTime": 1700000060000,
        "imageUrl": "https://cdn.discordapp.com/attachments/1/2/a.png",
    }
    sim.put(done)
    sync_source(source, full=True)

    sim.put(dict(done, status="IN_PROGRESS", progress="46%", finishTime=None))
    run = sync_source(source, full=True)

    assert run.stale >= 1
    task = Task.objects.get(task_id=done["id"])
    assert task.status == "SUCCESS"
    assert json.loads(task.raw) == done


def test_lower_progress_in_the_same_status_is_stale_too(start_sim, make_source):
    sim = start_sim("novicezk")
    source = make_source(sim)
    record = {"id": "1700000000000124", "status": "IN_PROGRESS", "progress": "62%"}
    sim.put(record)
    sync_source(source, full=True)
    sim.put(dict(record, progress="31%"))

    sync_source(source, full=True)

    assert Task.objects.get(task_id=record["id"]).progress == "62%"


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


def test_the_sync_schedules_exist_after_migrate_and_are_not_duplicated(db):
    from django_q.models import Schedule

    from tasks.bootstrap import ensure_schedules

    ensure_schedules()
    ensure_schedules()

    names = list(Schedule.objects.values_list("name", flat=True))
    assert len(names) == len(set(names))
    assert {"mjsite: full sync", "mjsite: light sync"} <= set(names)
    assert Schedule.objects.get(name="mjsite: light sync").func == "tasks.sync.light_pass"


def test_an_integer_beyond_64_bits_in_the_list_is_kept_exactly(start_sim, make_source):
    sim = start_sim("novicezk", tasks=3)
    record = {"id": "1700000000000400", "status": "SUCCESS", "seed": 2**80 + 1}
    sim.put(record)
    source = make_source(sim)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    assert json.loads(Task.objects.get(task_id=record["id"]).raw)["seed"] == 2**80 + 1
