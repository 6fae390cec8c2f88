"""The overview's hourly roll-up (tasks/reports/rollup.py): what a GROUP BY over Task says."""

import random
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from tasks.ingest.sync import ingest
from tasks.models import HourlyCount, RolledHour, Source, Task
from tasks.reports import overview as stats
from tasks.reports import rollup
from tests.conftest import make_task
from tests.threads import at_once

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
REASONS = ["Invalid Form Body", "任务超时", "Banned prompt", "", "x" * 250, "x" * 200 + "y"]


@pytest.fixture
def sources():
    return [
        Source.objects.create(name=f"s{i}", base_url=f"http://127.0.0.1:{9 + i}") for i in range(3)
    ]


def task_row(source, n, submitted, status="SUCCESS", action="IMAGINE", reason=""):
    return Task(
        source=source,
        task_id=f"t{n}",
        status=status,
        action=action,
        fail_reason=reason,
        submitted=submitted,
        raw="{}",
        raw_hash=f"h{n}",
    )


@pytest.fixture
def mixed(sources):
    """Tasks over 35 days (some before the window), on and just off hour boundaries,
    every status, a few actions, long and empty fail reasons, no submit time, one in
    the future."""
    rng = random.Random(5)
    now = timezone.now()
    rows = []
    for n in range(1500):
        submitted = now - timedelta(seconds=rng.randrange(35 * 86400))
        if n % 7 == 0:
            submitted = rollup.hour_start(submitted)  # exactly on the hour
        elif n % 11 == 0:
            submitted = rollup.hour_start(submitted) + HOUR - timedelta(microseconds=1)
        status = rng.choice(["SUCCESS"] * 5 + ["FAILURE"] * 3 + ["CANCEL", "IN_PROGRESS", ""])
        reason = rng.choice(REASONS) if status == "FAILURE" else rng.choice(["", "", "stale"])
        action = rng.choice(["IMAGINE", "UPSCALE", "DESCRIBE", ""])
        rows.append(task_row(rng.choice(sources), n, submitted, status, action, reason))
    rows.append(task_row(sources[0], "nodate", None))
    rows.append(task_row(sources[1], "future", now + timedelta(hours=3), "FAILURE"))
    rows.append(task_row(sources[2], "this-hour", now, "FAILURE", reason="任务超时"))
    Task.objects.bulk_create(rows)
    return rows


# The oracles: Python over every task, independent of the SQL under test.


def expected_counts(since):
    counts = Counter()
    for t in Task.objects.filter(submitted__gte=since):
        reason = t.fail_reason[:200] if t.status == "FAILURE" else ""
        counts[rollup.hour_start(t.submitted), t.source_id, t.status, t.action, reason] += 1
    return counts


def stored_counts(now):
    """What the overview sees: rolled hours plus the current hour live."""
    first, current = rollup.window(now)
    counts = Counter()
    for row in HourlyCount.objects.filter(hour__gte=first):
        counts[row.hour.astimezone(UTC), row.source_id, row.status, row.action, row.reason] += row.n
    live = Task.objects.filter(submitted__gte=current)
    for t in live:
        reason = t.fail_reason[:200] if t.status == "FAILURE" else ""
        counts[rollup.hour_start(t.submitted), t.source_id, t.status, t.action, reason] += 1
    return counts


def assert_matches_tasks():
    now = timezone.now()
    first, current = rollup.window(now)
    assert stored_counts(now) == expected_counts(first)
    assert not RolledHour.objects.filter(hour__gte=current).exists()


def test_the_rolled_counts_equal_a_group_by_over_the_tasks(mixed):
    assert rollup.refresh() == 30 * 24
    assert_matches_tasks()
    # Reasons are cut to 200 characters: 250 x's and 200 x's and a y count as one.
    assert HourlyCount.objects.filter(reason="x" * 200).exists()
    assert not HourlyCount.objects.filter(reason__startswith="x" * 201).exists()
    assert not HourlyCount.objects.filter(hour__lt=rollup.window(timezone.now())[0]).exists()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_the_overview_figures_equal_the_figures_counted_over_the_tasks(mixed, settings, zone):
    settings.TIME_ZONE = zone  # local days begin at 16:00 UTC in Shanghai
    now = timezone.now()
    figures = stats.compute(now)

    first_day = timezone.localdate(now) - timedelta(days=stats.WINDOW_DAYS - 1)
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    recent = list(Task.objects.filter(submitted__gte=since))
    statuses = Counter(t.status for t in recent)
    assert figures["total"] == len(recent)
    assert dict(figures["statuses"]) == statuses
    assert dict(figures["actions"]) == Counter(t.action for t in recent)
    finished = sum(statuses[s] for s in ("SUCCESS", "FAILURE", "CANCEL"))
    assert figures["failure_rate"] == pytest.approx(statuses["FAILURE"] / finished)
    for source_figures in figures["sources"]:
        mine = [t for t in recent if t.source_id == source_figures.source.pk]
        assert source_figures.total == len(mine)
        assert source_figures.failed == sum(t.status == "FAILURE" for t in mine)

    reasons = Counter(t.fail_reason[:200] for t in recent if t.status == "FAILURE")
    top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[: stats.TOP_REASONS]
    assert figures["reasons"] == top

    days = Counter(timezone.localdate(t.submitted) for t in recent)
    bars = figures["daily"]["bars"]
    assert [b["total"] for b in bars] == [
        days[first_day + timedelta(days=i)] for i in range(stats.WINDOW_DAYS)
    ]
    start = timezone.localtime(now).replace(minute=0, second=0, microsecond=0) - 47 * HOUR
    hours = Counter(
        (t.submitted - start) // HOUR for t in recent if start <= t.submitted < start + 48 * HOUR
    )
    assert [b["total"] for b in figures["hourly"]["bars"]] == [hours[i] for i in range(48)]
    assert figures["hourly"]["bars"][-1]["failure"] >= 1  # this hour's failure, live


def test_a_status_change_in_a_rolled_hour_shows_after_the_next_refresh(source_with_sync):
    source, record = source_with_sync
    rollup.refresh()
    assert HourlyCount.objects.get(status="IN_PROGRESS").n == 1

    ingest(source, [{**record, "status": "FAILURE", "failReason": "任务超时", "progress": ""}])
    assert rollup.refresh() == 1  # only that hour

    assert not HourlyCount.objects.filter(status="IN_PROGRESS").exists()
    assert HourlyCount.objects.get(status="FAILURE").reason == "任务超时"
    assert_matches_tasks()


def test_a_task_imported_into_an_old_hour_shows_after_the_next_refresh(source_with_sync):
    source, record = source_with_sync
    rollup.refresh()
    old = int((timezone.now() - timedelta(days=20)).timestamp() * 1000)
    ingest(source, [{**record, "id": "imported", "submitTime": old, "status": "SUCCESS"}])

    assert rollup.refresh() == 1
    assert HourlyCount.objects.get(status="SUCCESS").hour == rollup.hour_start(
        Task.objects.get(task_id="imported").submitted
    )
    assert_matches_tasks()


@pytest.fixture
def source_with_sync(sources):
    """A task stored by the sync, submitted three hours ago, still running."""
    submit = int((timezone.now() - 3 * HOUR).timestamp() * 1000)
    record = {"id": "running", "action": "IMAGINE", "status": "IN_PROGRESS", "progress": "40%"}
    record["submitTime"] = submit
    ingest(sources[0], [record])
    # Stored a day ago: only what the test writes counts as changed.
    Task.objects.update(last_changed=timezone.now() - timedelta(days=1))
    return sources[0], record


def test_purged_tasks_leave_the_counts_after_the_next_refresh(mixed):
    rollup.refresh()
    call_command("purge_tasks", "--older-than", "10", "--batch-size", "300", stdout=StringIO())
    assert Task.objects.filter(submitted__lt=timezone.now() - timedelta(days=10)).count() == 0

    assert rollup.refresh() > 0
    assert_matches_tasks()


def test_the_current_hour_is_counted_live_and_never_rolled(sources):
    rollup.refresh()
    make_task(sources[0], task_id="just-now", submitted=timezone.now(), status="FAILURE")

    assert rollup.refresh() == 0  # nothing to roll: the current hour is read live
    figures = stats.compute(timezone.now())
    assert figures["total"] == 1
    assert figures["hourly"]["bars"][-1]["failure"] == 1
    assert not HourlyCount.objects.exists()


def test_an_hour_is_rolled_once_it_is_over(sources, monkeypatch):
    start = rollup.hour_start(timezone.now()) + 10 * timedelta(minutes=1)
    monkeypatch.setattr(timezone, "now", lambda: start)
    rollup.refresh()
    make_task(sources[0], task_id="late", submitted=start, last_changed=start - timedelta(days=1))

    monkeypatch.setattr(timezone, "now", lambda: start + HOUR)
    assert rollup.refresh() == 1
    assert HourlyCount.objects.get().hour == rollup.hour_start(start)
    assert_matches_tasks()


def test_refreshing_again_changes_nothing(mixed):
    rollup.refresh()
    before = sorted(HourlyCount.objects.values_list("hour", "source", "status", "action", "n"))

    # The tasks were all written a moment ago: their hours are rolled again, the same.
    assert rollup.refresh() > 0
    assert rollup.refresh(sweep=rollup.SWEEP) > 0
    after = sorted(HourlyCount.objects.values_list("hour", "source", "status", "action", "n"))
    assert after == before
    assert RolledHour.objects.count() == 30 * 24


def test_rows_written_around_the_sync_are_rolled_in_hours_never_rolled(sources):
    # As bench/fixtures.py does: plain INSERTs, last_changed long ago.
    long_ago = timezone.now() - timedelta(days=90)
    rows = [
        task_row(sources[0], n, timezone.now() - timedelta(hours=n * 5), "FAILURE", reason="r")
        for n in range(1, 100)
    ]
    for row in rows:
        row.last_changed = row.first_seen = row.last_seen = long_ago
    Task.objects.bulk_create(rows)

    rollup.refresh()
    assert_matches_tasks()
    assert HourlyCount.objects.aggregate(n=Sum("n"))["n"] == len(rows)


def test_a_sweep_repairs_what_last_changed_cannot_see(sources):
    make_task(sources[0], task_id="moved", submitted=timezone.now() - 5 * HOUR)
    rollup.refresh()
    # A submit time changed without last_changed (the sync only moves it with it).
    Task.objects.update(submitted=timezone.now() - 30 * HOUR)
    for _ in range(30 * 24 // rollup.SWEEP):
        rollup.scheduled_refresh()
    assert_matches_tasks()


def test_an_overview_after_a_refresh_costs_a_fixed_number_of_queries(
    mixed, django_assert_num_queries
):
    def settled():
        rollup.refresh()
        # As if written a day ago: the next refresh finds nothing changed since this one.
        Task.objects.update(last_changed=timezone.now() - timedelta(days=1))

    settled()
    # sources (no runs to read), the roll-up's plan (1: the last scan for changes was
    # less than a minute ago), rolled counts with the fail reasons (2), the live hour,
    # sample, the image archive's kept counts and its backlog (2), the accounts line (2),
    # the secrets to mask, the open incidents: however many tasks
    with django_assert_num_queries(12):
        stats.compute(timezone.now())
    Task.objects.bulk_create(
        task_row(mixed[0].source, f"more{n}", timezone.now() - n * HOUR) for n in range(1, 200)
    )
    settled()
    with django_assert_num_queries(12):
        stats.compute(timezone.now())


def test_the_overview_looks_for_changed_tasks_at_most_once_a_minute(source_with_sync, monkeypatch):
    source, record = source_with_sync
    rollup.refresh()
    scanned = RolledHour.objects.get(hour=rollup.hour_start(timezone.now() - 3 * HOUR)).computed
    ingest(source, [{**record, "status": "FAILURE", "failReason": "任务超时", "progress": ""}])
    RolledHour.objects.filter(hour=rollup.hour_start(timezone.now() - 20 * HOUR)).delete()

    stats.compute(timezone.now())  # within the minute: only the hour never rolled
    assert HourlyCount.objects.get().status == "IN_PROGRESS"
    assert RolledHour.objects.count() == 30 * 24
    assert set(RolledHour.objects.values_list("computed", flat=True)) == {scanned}

    later = timezone.now() + timedelta(seconds=stats.CACHE_SECONDS)
    monkeypatch.setattr(timezone, "now", lambda: later)
    stats.compute(later)
    assert HourlyCount.objects.get().status == "FAILURE"


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_count_every_task_once(mixed):
    at_once(rollup.refresh)

    assert_matches_tasks()
    assert RolledHour.objects.count() == 30 * 24
