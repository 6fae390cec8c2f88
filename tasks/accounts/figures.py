"""What each Discord account did, from the tasks it ran (Task.account: its channel id).

An account's figures count every task its channel ran, whichever source synced it: the
same tasks as `/tasks/?account=<channel id>`. Three queries for a page of accounts,
however many tasks are stored:
- the roll-up's state (tasks/accounts/rollup.py, refreshed first when due);
- one UNION ALL of the rolled counts and of the live edges of the windows
  (task_account_submitted_idx: account, submitted, status, mode): tasks by status over
  7 days and 24 hours, and today's (since local midnight) by mode;
- short index walks per account: its newest task (the "last task", read by one more
  query), and its newest RUN_SAMPLE successes, whose median run time the page shows.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.formats import date_format

from tasks.accounts import rollup
from tasks.accounts.rollup import local_midnight as local_midnight  # where today begins
from tasks.models import FINISHED_STATUSES, Task
from tasks.reports.overview import bars, percentiles, seconds_between, slot

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


def figures_for(channels, now=None):
    """{channel id: Figures} for these channel ids (empty ones are left out)."""
    now = now or timezone.now()
    channels = sorted({c for c in channels if c})
    found = {c: Figures() for c in channels}
    if not channels:
        return found
    current = rollup.refresh(at_most_every=rollup.REFRESH_EVERY)
    counts = rollup.counts(channels, rollup.starts(now), current)
    for channel, status, mode, week, day, today in counts:
        figures = found[channel]
        if week:
            figures.week[status] += week
        if day:
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
    and its newest RUN_SAMPLE successes ("run"), by short index walks in one query."""
    sql, params = lateral(channels) if connection.vendor == "postgresql" else union(channels)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def walks(account):
    """The two walks of an account (a value or an expression): their SQL and parameters."""
    # Ordered by submitted alone, the index's order: each walk stops at its LIMIT.
    mine = Task.objects.filter(account=account, submitted__isnull=False).order_by("-submitted")
    # Both with the run time, so the UNION's columns have one type on PostgreSQL too.
    run = seconds_between("started", "finished")
    newest = mine.annotate(sample=Value("last"), run=run)[:1]
    successes = mine.filter(status=SUCCESS).annotate(sample=Value("run"), run=run)[:RUN_SAMPLE]
    for qs in (newest, successes):
        yield qs.values_list("sample", "account", "pk", "run").query.sql_with_params()


def union(channels):
    """A UNION ALL of every walk of every channel. Each walk's SQL is compiled once and
    given each channel as a parameter: compiling 100 querysets cost ten times the query."""
    parts, params = [], []
    for n, (sql, walk_params) in enumerate(walks("")):
        for i, channel in enumerate(channels):
            parts.append(f"SELECT * FROM ({sql}) AS w{n}_{i}")  # noqa: S608 - Django's own SQL
            # The account="" of walks("") is the one empty-string parameter: the channel's.
            params.extend(channel if p == "" else p for p in walk_params)
    return " UNION ALL ".join(parts), params


def lateral(channels):
    """PostgreSQL: each walk once, as a LATERAL join on the channels. The UNION ALL of 100
    walks took longer to plan there than to run."""
    parts, params = [], []
    for sql, walk_params in walks(RawSQL("c.account", ())):  # noqa: S611 - a column name
        parts.append(LATERAL.format(walk=sql))
        params.extend([list(channels), *walk_params])
    return " UNION ALL ".join(parts), params


LATERAL = "SELECT w.* FROM unnest(%s::varchar[]) AS c (account) CROSS JOIN LATERAL ({walk}) AS w"


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
