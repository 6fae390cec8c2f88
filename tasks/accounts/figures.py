"""What each Discord account did, from the tasks it ran (Task.account: its channel id).

An account's figures count every task its channel ran, whichever source synced it: the
same tasks as `/tasks/?account=<channel id>`. Two queries for a page of accounts, however
many tasks are stored, both on task_account_submitted_idx (account, submitted, status,
mode):
- one GROUP BY over each account's last 7 days, read from the index alone: tasks by
  status over 7 days and 24 hours, and today's (since local midnight) by mode;
- one UNION ALL of short index walks per account: its newest task (the "last task", read
  by one more query), and its newest RUN_SAMPLE successes, whose median run time the page
  shows.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Q, Value
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.formats import date_format

from tasks.models import FINISHED_STATUSES, Task
from tasks.reports.overview import bars, percentiles, seconds_between, slot

WEEK, DAY = timedelta(days=7), timedelta(hours=24)
RUN_SAMPLE = 50  # the newest successes of an account whose run times give its p50
CHART_DAYS = 30
SUCCESS, FAILURE = "SUCCESS", "FAILURE"


@dataclass
class Figures:
    week: Counter = field(default_factory=Counter)  # status → tasks in the last 7 days
    day: Counter = field(default_factory=Counter)  # status → tasks in the last 24 hours
    today: Counter = field(default_factory=Counter)  # mode ("" unknown) → tasks since midnight
    run_p50: timedelta | None = None
    run_sample: int = 0
    last_task: Task | None = None

    @staticmethod
    def rate(counts, status):
        finished = sum(counts[s] for s in FINISHED_STATUSES)
        return counts[status] / finished if finished else None

    @property
    def success_24h(self):
        return self.rate(self.day, SUCCESS)

    @property
    def failure_24h(self):
        return self.rate(self.day, FAILURE)

    @property
    def success_7d(self):
        return self.rate(self.week, SUCCESS)

    @property
    def failure_7d(self):
        return self.rate(self.week, FAILURE)

    @property
    def day_total(self):
        return sum(self.day.values())

    @property
    def week_total(self):
        return sum(self.week.values())

    @property
    def today_fast(self):
        # Against dayDrawLimit, which counts fast and turbo together (trueai).
        return self.today["fast"] + self.today["turbo"]


def local_midnight(now):
    return timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))


def figures_for(channels, now=None):
    """{channel id: Figures} for these channel ids (empty ones are left out)."""
    now = now or timezone.now()
    channels = sorted({c for c in channels if c})
    found = {c: Figures() for c in channels}
    if not channels:
        return found
    since_day, midnight = now - DAY, local_midnight(now)
    counts = (
        Task.objects.filter(account__in=channels, submitted__gte=now - WEEK)
        .values_list("account", "status", "mode")
        .annotate(
            week=Count("submitted"),  # local midnight is always within the week
            day=Count("submitted", filter=Q(submitted__gte=since_day)),
            today=Count("submitted", filter=Q(submitted__gte=midnight)),
        )
        .order_by()
    )
    for channel, status, mode, week, day, today in counts:
        figures = found[channel]
        figures.week[status] += week
        figures.day[status] += day
        if today:
            figures.today[mode] += today
    runs = {c: [] for c in channels}
    last = {}
    for sample, channel, pk, seconds in newest_samples(channels):
        if sample == "last":
            last[pk] = channel
        elif seconds is not None:
            runs[channel].append(round(seconds, 3))  # whole ms, as the overview's
    for task in Task.objects.filter(pk__in=last).only("task_id", "submitted", "status"):
        found[last[task.pk]].last_task = task
    for channel, seconds in runs.items():
        found[channel].run_sample = len(seconds)
        found[channel].run_p50 = percentiles(seconds).get("p50")
    return found


def newest_samples(channels):
    """(sample, channel, task pk, run seconds) rows: each account's newest task ("last")
    and its newest RUN_SAMPLE successes ("run"), by one UNION ALL of short index walks.
    Each walk's SQL is compiled once and given each channel as a parameter: compiling 100
    querysets cost ten times the query."""
    parts, params = [], []
    for alias, sql, template in walks():
        for i, channel in enumerate(channels):
            parts.append(f"{sql} AS {alias}{i}")
            params.extend(channel if p is CHANNEL else p for p in template)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return cursor.fetchall()


CHANNEL = object()  # where a walk's parameters take the channel id


def walks():
    """The two walks: a name for their aliases, their SQL and their parameters."""
    # Ordered by submitted alone, the index's order: each walk stops at its LIMIT.
    mine = Task.objects.filter(account="", submitted__isnull=False).order_by("-submitted")
    # Both with the run time, so the UNION's columns have one type on PostgreSQL too.
    run = seconds_between("started", "finished")
    newest = mine.annotate(sample=Value("last"), run=run)[:1]
    successes = mine.filter(status=SUCCESS).annotate(sample=Value("run"), run=run)[:RUN_SAMPLE]
    for name, qs in (("last", newest), ("run", successes)):
        sql, qs_params = qs.values_list("sample", "account", "pk", "run").query.sql_with_params()
        # The account="" above is the one empty-string parameter: the channel's place.
        template = [CHANNEL if p == "" else p for p in qs_params]
        yield name, f"SELECT * FROM ({sql})", template  # noqa: S608 - Django's own SQL


def daily_chart(channel, now=None):
    """Tasks per local day by outcome over the last CHART_DAYS days, as overview.bars."""
    now = now or timezone.now()
    first_day = timezone.localdate(now) - timedelta(days=CHART_DAYS - 1)
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    rows = (
        Task.objects.filter(account=channel, submitted__gte=since)
        .annotate(day=TruncDate("submitted"))
        .values_list("day", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    days = {}
    for day, status, n in rows:
        days.setdefault(day, [0, 0, 0])[slot(status)] += n
    buckets = []
    for i in range(CHART_DAYS):
        day = first_day + timedelta(days=i)
        buckets.append((day, *days.get(day, (0, 0, 0))))
    return bars(buckets, lambda d: date_format(d, "M j"), every=5)
