"""The sync against hostile and broken proxies: tests/fault_corpus.py, case by case.

For every case the bad pass either fails with a sentence a person can act on, or
counts the bad records as invalid and stores the good ones; no task stored before
changes; and the next pass against a healthy proxy mirrors it completely.
"""

import json

import pytest
import requests
from django.db import connection
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks.ingest import records
from tasks.ingest.sync import ingest, sync_source
from tasks.models import InvalidRecord, Source, SyncRun, Task
from tests.fault_corpus import (
    CORPUS,
    FRESH,
    Context,
    Fault,
    finished_task,
    list_replacing_with,
    queue_aimed,
)
from tests.faultserver import FaultServer, Reply

pytestmark = pytest.mark.django_db

SECRET = "s3cret"  # the simulator's secret (tests/conftest.py): never in a message


def on_postgresql():
    return connection.vendor == "postgresql"


def corpus_params():
    return list(_corpus_params())


def _corpus_params():
    for fault in CORPUS:
        marks = []
        if fault.bug:
            marks.append(pytest.mark.xfail(strict=True, reason=fault.bug))
        yield pytest.param(fault, id=fault.id, marks=marks)


@pytest.fixture
def healthy(start_sim, make_source):
    """A simulator with finished and running tasks, mirrored once."""
    sim = start_sim("novicezk", tasks=30)
    for i in range(3):
        sim.submit(prompt=f"still running {i}")
    source = make_source(sim)
    run = sync_source(source, full=True)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    return sim, source


def list_body(sim):
    """The simulator's /list body, byte for byte."""
    response = requests.get(
        sim.url + "/mj/task/list", headers={"mj-api-secret": SECRET}, timeout=10
    )
    response.raise_for_status()
    return response.content


def snapshot(source):
    """Each stored task's raw record, its hash and its typed state."""
    rows = Task.objects.filter(source=source).values_list(
        "task_id", "raw", "raw_hash", "status", "progress", "progress_pct"
    )
    return {task_id: tuple(rest) for task_id, *rest in rows}


def assert_readable(error):
    assert error, "a failed pass must say why"
    assert not error.startswith("internal error"), error
    assert "Traceback" not in error
    assert SECRET not in error
    assert "\x00" not in error
    assert len(error) <= 1000, f"a {len(error):,}-character message: {error[:300]}"


def assert_mirrors(source, sim):
    rows = {t.task_id: t for t in Task.objects.filter(source=source)}
    for record in sim.all_records():
        task = rows[record["id"]]
        assert json.loads(task.raw) == record
        assert task.raw_hash == records.raw_hash(task.raw)
        assert task.gone_since is None


def check_stored(task_id, expected):
    task = Task.objects.get(task_id=task_id)
    for name, value in expected.items():
        if name == "raw":
            assert json.loads(task.raw) == value
            assert task.raw_hash == records.raw_hash(task.raw)
        elif name == "prompt_len":
            assert len(task.prompt) == value
        else:
            assert getattr(task, name) == value, name


@pytest.mark.parametrize("fault", corpus_params())
def test_the_sync_survives(fault: Fault, healthy, fault_server, request):
    if fault.bug_on_postgresql and on_postgresql():
        # Still run it: a strict xfail fails the suite once the bug is fixed.
        request.applymarker(pytest.mark.xfail(strict=True, reason=fault.bug_on_postgresql))
    sim, source = healthy
    before = snapshot(source)
    ctx = Context(good_body=list_body(sim), stored_ids=sorted(before), source_name=source.name)
    fault_server.upstream = sim.url
    for (method, path), reply in fault.routes(ctx).items():
        fault_server.route(method, path, reply)
    source.base_url = fault_server.url
    source.save()

    with override_settings(**fault.settings):
        run = sync_source(source, full=fault.full)

    failed = run.outcome == SyncRun.Outcome.FAILED
    print(f"{fault.id}: {run.outcome} {run.error!r}")  # shown with -s
    if fault.outcome == "failed" or (fault.outcome == "either" and failed):
        assert run.outcome == SyncRun.Outcome.FAILED, run.summary()
        assert_readable(run.error)
        for words in fault.message:
            # A tuple: any of these will do.
            assert any(w in run.error for w in (words if isinstance(words, tuple) else (words,)))
    else:
        assert run.outcome == SyncRun.Outcome.OK, run.error
        bad = InvalidRecord.objects.filter(sync_run=run)
        if fault.invalid is not None:
            assert run.invalid == bad.count() == fault.invalid
        reasons = [r.reason for r in bad]
        for words in fault.reasons:
            assert any(words in reason for reason in reasons), (words, reasons[:10])
        assert all(r.raw and r.reason for r in bad)
        if fault.fresh:
            check_stored(FRESH["id"], {"raw": FRESH})
        for task_id, expected in fault.stored.items():
            check_stored(task_id, expected)
        if fault.stale is not None:
            assert run.stale == fault.stale, run.summary()
    if fault.check:
        fault.check(ctx, fault_server, run)
    after = snapshot(source)
    changed = set()
    if fault.target:
        changed = check_target(fault, ctx, run, before, after)
    assert {k: after[k] for k in before if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }, "a stored task changed"

    source.base_url = sim.url
    source.save()
    recovery = sync_source(source, full=True)

    assert recovery.outcome == SyncRun.Outcome.OK, recovery.error
    assert recovery.invalid == 0
    assert_mirrors(source, sim)


def check_target(fault, ctx, run, before, after):
    """The stored task a case aims at: unchanged (raw, hash, status), or changed as the
    case says a valid record changes it; its invalid records carry its id. Returns the
    ids whose change is expected."""
    target = fault.target(ctx)
    assert target in before, f"{target} was not stored before the bad pass"
    raw, digest, status, *_ = before[target]
    task = Task.objects.get(source__name=ctx.source_name, task_id=target)
    if run.outcome == SyncRun.Outcome.OK:
        named = set(InvalidRecord.objects.filter(sync_run=run).values_list("task_id", flat=True))
        if fault.invalid_target:
            assert named <= {target}, named
            assert named == ({target} if fault.invalid else set()), named
        else:
            assert target not in named, named
    if not fault.target_becomes:
        assert (task.raw, task.raw_hash, task.status) == (raw, digest, status)
        assert after[target] == before[target]
        return set()
    for name, value in fault.target_becomes.items():
        if name == "raw":
            assert json.loads(task.raw) == value(ctx)
            assert task.raw_hash == records.raw_hash(task.raw) != digest
        else:
            assert getattr(task, name) == value, name
    return {target}


def test_the_corpus_is_large_and_each_case_is_named_once():
    names = [fault.id for fault in CORPUS]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


def test_the_corpus_aims_hostile_records_at_stored_tasks():
    aimed = [fault.id for fault in CORPUS if fault.target]
    assert len(aimed) >= 8, aimed


# Known bugs in how a hostile record for a stored task moves that task's bookkeeping


def aim_at_stored(healthy, fault_server, routes):
    """One full pass against the healthy proxy with these routes; (run, the target's row)."""
    sim, source = healthy
    ctx = Context(
        good_body=list_body(sim),
        stored_ids=sorted(snapshot(source)),
        source_name=source.name,
    )
    target = finished_task(ctx)
    fault_server.upstream = sim.url
    for (method, path), reply in routes(ctx).items():
        fault_server.route(method, path, reply)
    source.base_url = fault_server.url
    source.save()
    run = sync_source(source, full=True)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    return run, Task.objects.get(source=source, task_id=target)


def test_a_stored_task_listed_with_an_invalid_record_is_not_marked_gone(healthy, fault_server):
    run, task = aim_at_stored(
        healthy, fault_server, list_replacing_with(finished_task, status=["SUCCESS"])
    )

    assert run.invalid == 1
    assert (run.gone, task.gone_since) == (0, None)


def test_a_stale_queue_record_does_not_put_a_finished_task_in_the_queue(healthy, fault_server):
    run, task = aim_at_stored(
        healthy,
        fault_server,
        queue_aimed(finished_task, status="NOT_START", progress=None, imageUrl=None),
    )

    assert run.stale == 1
    assert task.status == "SUCCESS"
    assert task.in_queue is False


# Beyond the corpus: faults that need more than one answer


def test_a_redirect_to_another_host_is_refused_and_carries_nothing_there(healthy, fault_server):
    sim, source = healthy
    elsewhere = FaultServer(upstream=sim.url).start()
    try:
        fault_server.upstream = sim.url
        fault_server.route(
            "GET", "/mj/task/list", Reply(302, b"", {"Location": elsewhere.url + "/mj/task/list"})
        )
        source.base_url = fault_server.url
        source.save()

        run = sync_source(source, full=True)

        # A proxy's redirect is followed on its own host and port only (README.md, Security):
        # nothing went to the other one, the secret least of all.
        assert elsewhere.requests == []
        assert run.outcome == SyncRun.Outcome.FAILED
        assert "the redirect was refused" in run.error
    finally:
        elsewhere.stop()


def test_credentials_in_the_source_url_never_reach_the_message(healthy, fault_server):
    sim, source = healthy
    fault_server.everywhere(Reply(500, b"upstream exploded", {}))
    source.base_url = fault_server.url.replace("http://", "http://admin:hunter2@")
    source.save()

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "500 from" in run.error
    assert "hunter2" not in run.error and "admin:" not in run.error


def test_a_pass_that_fails_midway_keeps_the_batches_it_stored(healthy, fault_server):
    # A queue that stores fine, then a list that breaks: what the queue brought stays,
    # nothing half-written appears, and the run says what went wrong.
    sim, source = healthy
    fault_server.upstream = sim.url
    fault_server.route("GET", "/mj/task/queue", Reply(body=json.dumps([FRESH]).encode()))
    fault_server.route("GET", "/mj/task/list", Reply(500, b"boom", {}))
    source.base_url = fault_server.url
    source.save()

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert run.created == 1
    check_stored(FRESH["id"], {"raw": FRESH})


# Hostile orderings: records of one task in any order


STATUSES = ["NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCEL"]


def ordering_source():
    """A source without any task (hypothesis runs many examples in one test)."""
    source, _ = Source.objects.get_or_create(name="orderings", base_url="http://127.0.0.1:9")
    Task.objects.filter(source=source).delete()
    return source


def split(sequence, cuts):
    bounds = [0, *sorted(c for c in cuts if c < len(sequence)), len(sequence)]
    return [sequence[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def versions(draw, numeric_progress):
    status = draw(st.sampled_from(STATUSES + ["", "PAUSED_BY_ALIENS"]))
    if numeric_progress:
        progress = draw(st.integers(0, 100).map(lambda n: f"{n}%"))
    else:
        progress = draw(st.sampled_from([None, "", "0%", "15%", "62%", "100%", "Stopped", 42]))
    record = {"id": "1700000000000777", "status": status, "progress": progress}
    record["n"] = draw(st.integers(0, 10**6))  # tells equal states apart
    return record


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sequence=st.lists(versions(numeric_progress=True), min_size=1, max_size=8),
    cuts=st.sets(st.integers(1, 7)),
)
def test_any_order_of_records_leaves_the_furthest_one_stored(sequence, cuts):
    source = ordering_source()
    # One record per answer, or several of them in one answer (duplicates of an id).
    for batch in split(sequence, cuts):
        ingest(source, batch)

    task = Task.objects.get(source=source, task_id="1700000000000777")
    ranks = [records.normalise(r).rank for r in sequence]
    furthest = max(ranks)
    assert records.state_rank(task.status, task.progress_pct) == furthest
    # Among records as far along as that, the last one received is kept, exactly.
    last = [r for r, rank in zip(sequence, ranks, strict=True) if rank == furthest][-1]
    assert json.loads(task.raw) == last


def stored_rank(source, task_id):
    task = Task.objects.get(source=source, task_id=task_id)
    return records.state_rank(task.status, task.progress_pct)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sequence=st.lists(versions(numeric_progress=False), min_size=1, max_size=8),
    cuts=st.sets(st.integers(1, 7)),
)
@example(  # found by Hypothesis: "0%" then a copy of the stored record, in one answer
    sequence=[
        {"id": "1700000000000777", "status": "NOT_START", "progress": None, "n": 0},
        {"id": "1700000000000777", "status": "NOT_START", "progress": "0%", "n": 0},
        {"id": "1700000000000777", "status": "NOT_START", "progress": None, "n": 0},
    ],
    cuts={1},
)
def test_any_order_of_records_never_lowers_the_state_or_the_percentage(sequence, cuts):
    # Words ("Stopped"), nulls, unknown statuses and duplicates in one answer: the
    # stored (state, percentage) only ever rises, to the furthest state and the highest
    # percentage seen in it.
    source = ordering_source()
    kept = None
    for batch in split(sequence, cuts):
        ingest(source, batch)
        now = stored_rank(source, "1700000000000777")
        assert kept is None or now >= kept, f"{kept} went back to {now}"
        kept = now

    ranks = [records.normalise(r).rank for r in sequence]
    top = max(state for state, _ in ranks)
    assert kept == (top, max(pct for state, pct in ranks if state == top))


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)
FIELD_NAMES = ["action", "status", "prompt", "promptEn", "description", "state", "progress"]
FIELD_NAMES += ["imageUrl", "failReason", "submitTime", "startTime", "finishTime", "properties"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    fields=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), JSON_VALUE),
    number=st.integers(1, 10**6),
)
def test_any_json_value_in_any_field_is_stored_or_counted_invalid(fields, number):
    # Through the whole write path on this database: typed columns, jsonb, the
    # search index. Nothing raises; the record is stored as sent, or counted invalid.
    source = ordering_source()
    task_id = str(1700000000100000 + number)  # never the good record's id
    record = {**fields, "id": task_id}
    counts, ids = ingest(source, [record, {"id": "1700000000000001", "status": "SUBMITTED"}])

    assert "1700000000000001" in ids  # the good record beside it is stored
    if counts.invalid:
        assert task_id not in ids
        assert InvalidRecord.objects.filter(source=source, task_id=task_id).exists()
    else:
        task = Task.objects.get(source=source, task_id=task_id)
        assert json.loads(task.raw) == record or record != record  # NaN is not itself


def test_progress_does_not_go_back_through_a_word():
    source = ordering_source()
    for progress in ("62%", "Stopped", "15%"):
        ingest(source, [{"id": "1700000000000778", "status": "IN_PROGRESS", "progress": progress}])

    task = Task.objects.get(source=source, task_id="1700000000000778")
    assert task.progress_pct != 15, "62% was seen, then 15% replaced it"
