"""The accounts' hourly roll-up (tasks/accounts/rollup.py): the figures it gives equal what
the tasks say, at the windows' edges, after syncs, status changes and deletes."""

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from tasks import deletion
from tasks.accounts import rollup
from tasks.accounts.figures import figures_for
from tasks.ingest.sync import ingest
from tasks.models import AccountHour, AccountRollup, Source, Task
from tests.threads import at_once

pytestmark = pytest.mark.django_db

HOUR, TICK = timedelta(hours=1), timedelta(microseconds=1)
CHANNELS = ["1100000000000000001", "1100000000000000002"]


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


def task_row(source, n, submitted, account=CHANNELS[0], status="SUCCESS", mode="fast"):
    return Task(
        source=source,
        task_id=f"t{n}",
        status=status,
        mode=mode,
        account=account,
        submitted=submitted,
        raw="{}",
        raw_hash=f"h{n}",
    )


def midnight(now):
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def edges(now):
    """Moments on and around the edges of the three windows and of their hours."""
    for start in (now - timedelta(days=7), now - timedelta(hours=24), midnight(now)):
        on_hour = rollup.hour_start(start)
        for moment in (start, on_hour, on_hour + HOUR):
            yield from (moment - TICK, moment, moment + TICK)


def expected(channel, now):
    """The figures of one channel, by Python over its tasks."""
    mine = [t for t in Task.objects.filter(account=channel) if t.submitted]
    week = Counter(t.status for t in mine if t.submitted >= now - timedelta(days=7))
    day = Counter(t.status for t in mine if t.submitted >= now - timedelta(hours=24))
    today = Counter(t.mode for t in mine if t.submitted >= midnight(now))
    return week, day, today


def assert_figures_match(now=None):
    now = now or timezone.now()
    found = figures_for(CHANNELS, now)
    for channel in CHANNELS:
        f = found[channel]
        assert (f.week, f.day, f.today) == expected(channel, now), channel


# Kolkata's midnight is no UTC hour (UTC+5:30): today's first partial hour is counted live.
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_the_figures_equal_what_the_tasks_say_at_every_edge(source, settings, zone):
    settings.TIME_ZONE = zone
    now = timezone.now()
    rng = random.Random(16)
    moments = [now - timedelta(seconds=rng.randrange(9 * 86400)) for _ in range(600)]
    moments += list(edges(now)) + [now, now + 2 * HOUR, rollup.hour_start(now)]
    rows = [
        task_row(
            source,
            n,
            moment,
            account=rng.choice([*CHANNELS, ""]),
            status=rng.choice(["SUCCESS", "SUCCESS", "FAILURE", "CANCEL", "IN_PROGRESS"]),
            mode=rng.choice(["fast", "relax", "turbo", ""]),
        )
        for n, moment in enumerate(moments)
    ]
    rows.append(task_row(source, "no-date", None))
    Task.objects.bulk_create(rows)

    assert_figures_match(now)  # the first read rolls the week
    assert AccountRollup.objects.get().through == rollup.hour_start(timezone.now())
    rolled = AccountHour.objects.aggregate(n=Sum("n"))["n"]
    assert 0 < rolled < len(rows)  # the rolled hours hold most of the week, not all of it
    assert not AccountHour.objects.filter(account="").exists()
    assert_figures_match(now)  # read again, from the totals
    # A read on the hour has other whole hours than the totals': it sums the hours.
    assert_figures_match(rollup.hour_start(now))
    # A read of a week that began before the rolled hours counts it live.
    assert_figures_match(rollup.hour_start(now) - 3 * HOUR + 5 * TICK)


def test_a_task_synced_a_second_ago_is_counted_at_once(source):
    figures_for(CHANNELS)  # the hours are rolled; the scan is fresh
    record = {"id": "new", "action": "IMAGINE", "status": "SUBMITTED", "progress": "0%"}
    record["submitTime"] = int((timezone.now() - timedelta(seconds=1)).timestamp() * 1000)
    record["properties"] = {"discordInstanceId": CHANNELS[1]}
    ingest(source, [record])

    found = figures_for(CHANNELS)
    assert found[CHANNELS[1]].day == Counter({"SUBMITTED": 1})
    assert_figures_match()


@pytest.fixture
def running(source):
    """A task stored by the sync three hours ago, still running, its hour rolled."""
    record = {"id": "running", "action": "IMAGINE", "status": "IN_PROGRESS", "progress": "40%"}
    record["submitTime"] = int((timezone.now() - 3 * HOUR).timestamp() * 1000)
    record["properties"] = {"discordInstanceId": CHANNELS[0]}
    ingest(source, [record])
    Task.objects.update(last_changed=timezone.now() - timedelta(days=1))
    rollup.refresh()
    assert AccountHour.objects.get().status == "IN_PROGRESS"
    return record


def test_a_changed_status_moves_its_count(source, running):
    ingest(source, [{**running, "status": "FAILURE", "failReason": "banned", "progress": ""}])
    rollup.refresh()  # as the page does once a minute

    assert AccountHour.objects.get().status == "FAILURE"
    assert figures_for(CHANNELS)[CHANNELS[0]].week == Counter({"FAILURE": 1})
    assert_figures_match()


def test_a_page_looks_for_changed_tasks_at_most_once_a_minute(source, running, monkeypatch):
    figures_for(CHANNELS)  # scans: the task is unchanged since it was rolled
    ingest(source, [{**running, "status": "SUCCESS", "progress": "100%"}])
    assert figures_for(CHANNELS)[CHANNELS[0]].week == Counter({"IN_PROGRESS": 1})

    later = timezone.now() + rollup.REFRESH_EVERY
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert figures_for(CHANNELS)[CHANNELS[0]].week == Counter({"SUCCESS": 1})


def test_a_deleted_task_is_uncounted_at_once(source):
    now = timezone.now()
    Task.objects.bulk_create(
        task_row(source, n, now - n * 7 * timedelta(minutes=11), account=CHANNELS[n % 2])
        for n in range(1, 40)
    )
    figures_for(CHANNELS)
    gone = Task.objects.filter(task_id__in=["t3", "t4", "t30"])
    deletion.delete_tasks(list(gone.values_list(*deletion.COLUMNS)))

    assert_figures_match()  # within the minute: no scan, the delete re-rolled its hours
    assert (
        AccountHour.objects.aggregate(n=Sum("n"))["n"]
        == Task.objects.filter(
            submitted__lt=rollup.hour_start(timezone.now()),
            submitted__gte=rollup.window_start(timezone.now()),
        ).count()
    )


def test_an_hour_is_rolled_once_it_is_over_and_forgotten_when_it_leaves(source, monkeypatch):
    start = rollup.hour_start(timezone.now()) + timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: start)
    Task.objects.bulk_create([task_row(source, 1, start)])
    figures_for(CHANNELS)
    assert not AccountHour.objects.exists()  # the current hour is counted live

    monkeypatch.setattr(timezone, "now", lambda: start + HOUR)
    assert_figures_match(start + HOUR)
    assert AccountHour.objects.get().hour == rollup.hour_start(start)

    week_later = start + timedelta(days=7, hours=1)
    monkeypatch.setattr(timezone, "now", lambda: week_later)
    assert_figures_match(week_later)
    assert not AccountHour.objects.exists()


def test_a_roll_left_behind_by_more_than_the_window_counts_afresh(source, monkeypatch):
    now = timezone.now()
    Task.objects.bulk_create(task_row(source, n, now - n * 5 * HOUR) for n in range(1, 30))
    figures_for(CHANNELS)
    AccountRollup.objects.update(through=now - timedelta(days=8))
    AccountHour.objects.update(n=1000)  # what a refresh must not keep

    assert_figures_match()
    assert AccountHour.objects.aggregate(n=Sum("n"))["n"] < 1000


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_count_every_task_once(source):
    now = timezone.now()
    Task.objects.bulk_create(task_row(source, n, now - n * 3 * HOUR) for n in range(1, 50))
    at_once(rollup.refresh)

    assert (
        AccountHour.objects.aggregate(n=Sum("n"))["n"]
        == Task.objects.filter(
            submitted__gte=rollup.window_start(timezone.now()),
            submitted__lt=rollup.hour_start(timezone.now()),
        ).count()
    )
    assert_figures_match()


def test_the_schedule_rolls_the_week_ahead_of_the_first_page(source):
    now = timezone.now()
    Task.objects.bulk_create(
        task_row(source, n, now - timedelta(hours=n, minutes=5)) for n in range(1, 30)
    )
    through = rollup.scheduled_refresh()
    assert through == AccountRollup.objects.get().through.isoformat()
    rolled = AccountHour.objects.aggregate(n=Sum("n"))["n"]
    assert rolled == Task.objects.filter(submitted__lt=AccountRollup.objects.get().through).count()
    assert rolled >= 28  # an hour boundary passing mid-test leaves at most one out
    assert_figures_match()
