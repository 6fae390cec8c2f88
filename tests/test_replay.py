"""Replayed records: every recorded state of a task, in any order, ends at the newest.

Proxies push a task's changes to the notify-hook more than once and out of order, and a
list answer can be older than the last push. Between two finished records the later
finishTime wins; with equal finish times a re-signed image link (same file, later `ex`)
wins over the earlier one; a finished task changes to another finished status only with
a later finish time (records.successor). These tests replay one task's history through
the real hook view, through list answers given to sync.ingest, and through full passes
against the simulator, and check the stored task after every step.
"""

import itertools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.ingest.records import newest, normalise
from tasks.ingest.sync import ingest, sync_source
from tasks.links import link_expiry, same_picture
from tasks.models import Source, SyncRun, Task
from tasks.simulator.links import Signer, snowflake

pytestmark = pytest.mark.django_db

SUBMIT = 1_700_000_000_000
START = SUBMIT + 5_000
FINISH = SUBMIT + 60_000
HOUR = 3_600_000
CDN = "https://cdn.discordapp.com"
SIGNER = Signer("replay", 86_400)  # the simulator's links: ex = issue time + a day, in hex
CHANNEL = snowflake(SUBMIT - 86_400_000, 1)
IDS = itertools.count(1_700_000_000_100_000)  # a fresh task per hypothesis example


def link(name, issued_ms, attachment):
    return SIGNER.url(CDN, CHANNEL, snowflake(attachment), name, issued_ms)


def history(task_id, failure="earlier"):
    """Every recorded state of one task, oldest first: the last one is the newest.

    failure="earlier": a FAILURE finished before the SUCCESS (an old record of a first
    attempt), so the re-signed SUCCESS is the newest. failure="later": the task failed
    after it succeeded (a later finishTime), so that FAILURE is the newest.
    """
    base = {"id": str(task_id), "action": "IMAGINE", "prompt": "灯塔", "submitTime": SUBMIT}
    running = {**base, "status": "IN_PROGRESS", "startTime": START}
    succeeded = {
        **running,
        "status": "SUCCESS",
        "progress": "100%",
        "finishTime": FINISH,
        "imageUrl": link("lighthouse.png", FINISH, FINISH),
    }
    # The same file signed three hours later (later ex, is and hm); the proxy also filled
    # in the prompt it ended with, so a revert shows in the prompt too.
    resigned = {
        **succeeded,
        "prompt": "黄昏时的灯塔",
        "imageUrl": link("lighthouse.png", FINISH + 3 * HOUR, FINISH),
    }
    at = FINISH - 30_000 if failure == "earlier" else FINISH + HOUR
    failed = {
        **running,
        "status": "FAILURE",
        "progress": "",
        "finishTime": at,
        "failReason": "Banned prompt detected",
    }
    states = [
        {**base, "status": "SUBMITTED", "progress": "0%"},
        {**running, "progress": "10%", "imageUrl": link("grid_0.webp", START + 6_000, START)},
        {**running, "progress": "50%", "imageUrl": link("grid_0.webp", START + 30_000, START)},
        succeeded,
        resigned,
    ]
    if failure == "earlier":
        states.insert(3, failed)
    else:
        states.append(failed)
    return states


def test_the_history_is_what_the_tests_say_it_is():
    for failure in ("earlier", "later"):
        states = history(1, failure)
        done = [normalise(r) for r in states if r["status"] == "SUCCESS"]
        assert len(states) == 6 and len(done) == 2
        # Same file, same finish time, the re-signed link expires later.
        assert done[0].finished == done[1].finished
        a, b = (link_expiry(r.image_url) for r in done)
        assert (b - a).total_seconds() == 3 * 3600
        assert same_picture(done[0].image_url, done[1].image_url)


@pytest.fixture
def source():
    return Source.objects.create(name="replayed", base_url="http://127.0.0.1:9")


def push(client, source, record):
    response = client.post(
        f"/hooks/mj/{source.hook_token}/",
        json.dumps(record, ensure_ascii=False),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["outcome"]


def assert_stored(source, record):
    """The stored task is exactly this record: typed fields and raw text."""
    task = Task.objects.get(source=source, task_id=record["id"])
    typed = normalise(record)
    stored = (task.status, task.prompt, task.image_url, task.finished, task.progress_pct)
    expected = (typed.status, typed.prompt, typed.image_url, typed.finished, typed.progress_pct)
    assert stored == expected
    assert json.loads(task.raw) == record
    return task


def newest_so_far(states, arrived):
    return states[max(arrived)]


REPLAY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@REPLAY
@given(order=st.permutations(range(6)), failure=st.sampled_from(["earlier", "later"]))
def test_hook_calls_in_any_order_end_at_the_newest_state(client, source, order, failure):
    states = history(next(IDS), failure)
    arrived = []
    for n in order:
        outcome = push(client, source, states[n])
        # Accepted exactly when it is newer than everything before it.
        assert (outcome == "ignored") == bool(arrived and n < max(arrived)), (order, n)
        arrived.append(n)
        assert_stored(source, newest_so_far(states, arrived))
    assert_stored(source, states[-1])


def split(sequence, cuts):
    bounds = [0, *sorted(c for c in cuts if c < len(sequence)), len(sequence)]
    return [sequence[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@REPLAY
@given(
    order=st.permutations(range(6)),
    failure=st.sampled_from(["earlier", "later"]),
    cuts=st.sets(st.integers(1, 5)),
)
def test_list_answers_in_any_order_end_at_the_newest_state(source, order, failure, cuts):
    # One state per answer, or several states of the task in one answer (a list holding
    # an id twice), and another task beside it, so the batch takes the pass's pre-read.
    states = history(next(IDS), failure)
    other = {"id": str(next(IDS)), "status": "SUBMITTED", "progress": "0%"}
    arrived = []
    for batch in split(list(order), cuts):
        ingest(source, [states[n] for n in batch] + [other])
        arrived += batch
        assert_stored(source, newest_so_far(states, arrived))
    assert_stored(source, states[-1])


@settings(max_examples=300, deadline=None)
@given(order=st.permutations(range(6)), failure=st.sampled_from(["earlier", "later"]))
def test_the_record_rules_keep_the_newest_state_in_any_order(order, failure):
    # The rule itself, without a database: after each arrival, the record newest() keeps
    # (records.successor applied in arrival order) is the newest that arrived.
    states = [normalise(r) for r in history(1, failure)]
    for k in range(1, len(order) + 1):
        arrived = list(order[:k])
        kept = newest([states[n] for n in arrived])["1"]
        assert kept.raw == newest_so_far(states, arrived).raw
    assert kept.raw == states[-1].raw


@pytest.mark.parametrize("failure", ["earlier", "later"])
@pytest.mark.parametrize("seed", range(3))
def test_full_passes_against_the_simulator_in_any_order_end_at_the_newest_state(
    start_sim, make_source, failure, seed
):
    # The list path for real: the proxy answers each state in turn, in a random order.
    sim = start_sim(tasks=3)
    source = make_source(sim)
    states = history(next(IDS), failure)
    order = random.Random(seed).sample(range(6), 6)
    arrived = []
    for n in order:
        sim.put(states[n])
        run = sync_source(source, full=True)
        assert run.outcome == SyncRun.Outcome.OK, run.error
        behind = bool(arrived and n < max(arrived))
        # A running state comes in the queue's answer and the list's: counted in each.
        assert (run.stale > 0) == behind, (order, n, run.stale)
        arrived.append(n)
        assert_stored(source, newest_so_far(states, arrived))
    assert_stored(source, states[-1])


# Explicit cases, through the hook


def test_an_older_success_after_a_newer_one_is_ignored(client, source):
    states = history(next(IDS))
    succeeded, resigned = states[-2], states[-1]
    push(client, source, resigned)

    assert push(client, source, succeeded) == "ignored"

    task = assert_stored(source, resigned)
    assert task.prompt == "黄昏时的灯塔"
    assert task.events.count() == 1


def test_a_newer_success_after_an_older_one_is_taken(client, source):
    states = history(next(IDS))
    push(client, source, states[-2])

    assert push(client, source, states[-1]) == "updated"

    assert_stored(source, states[-1])


FAILED = {"status": "FAILURE", "progress": "", "imageUrl": None, "failReason": "Job timed out"}


@pytest.mark.parametrize("shift", [0, -1, -HOUR], ids=["same", "1 ms earlier", "hour earlier"])
def test_success_to_failure_without_a_later_finish_time_is_refused(client, source, shift):
    succeeded = history(next(IDS))[-1]
    push(client, source, succeeded)

    failed = {**succeeded, **FAILED, "finishTime": succeeded["finishTime"] + shift}
    assert push(client, source, failed) == "ignored"

    assert_stored(source, succeeded)


def test_failure_to_success_with_the_same_finish_time_is_refused_too(client, source):
    succeeded = history(next(IDS))[-1]
    failed = {**succeeded, **FAILED}
    push(client, source, failed)

    assert push(client, source, succeeded) == "ignored"

    assert_stored(source, failed)


def test_success_to_failure_with_a_later_finish_time_is_accepted(client, source):
    succeeded = history(next(IDS))[-1]
    push(client, source, succeeded)

    failed = {**succeeded, **FAILED, "finishTime": succeeded["finishTime"] + 1}
    assert push(client, source, failed) == "updated"

    task = assert_stored(source, failed)
    assert list(task.events.order_by("pk").values_list("status", flat=True)) == [
        "SUCCESS",
        "FAILURE",
    ]


def test_a_finished_record_without_a_finish_time_does_not_replace_one_with_it(client, source):
    succeeded = history(next(IDS))[-1]
    push(client, source, succeeded)

    assert push(client, source, {**succeeded, "finishTime": None, "prompt": "旧"}) == "ignored"
    assert push(client, source, {**succeeded, **FAILED, "finishTime": None}) == "ignored"

    assert_stored(source, succeeded)


def test_the_same_finished_record_again_with_other_fields_still_arrives(client, source):
    # Equal finish time and link: nothing orders them, so the later arrival wins, as it
    # does for any two records of the same state (buttons, properties, a fixed prompt).
    succeeded = history(next(IDS))[-1]
    push(client, source, succeeded)
    fixed = {**succeeded, "buttons": [{"customId": "MJ::JOB::upsample::1", "label": "U1"}]}

    assert push(client, source, fixed) == "updated"

    assert_stored(source, fixed)


def test_finished_records_without_finish_times_keep_the_state_and_progress_order():
    # A proxy that sends no finishTime at all: nothing says which finished record is
    # newer, so the order stays what it was (the state, then the progress, then the last).
    succeeded = normalise({"id": "1", "status": "SUCCESS", "progress": "100%"})
    failed = normalise({"id": "1", "status": "FAILURE", "progress": ""})
    cancelled = normalise({"id": "1", "status": "CANCEL", "progress": "40%"})

    assert newest([succeeded, failed])["1"].status == "FAILURE"
    assert newest([succeeded, cancelled])["1"].status == "SUCCESS"  # a lower progress
