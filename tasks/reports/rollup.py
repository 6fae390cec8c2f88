"""The overview's roll-up: task counts per UTC hour, kept up to date incrementally.

HourlyCount holds, for every complete hour of the last DAYS days, how many tasks were
submitted in it per source, status, action and fail reason; RolledHour says which hours
are computed and when. The overview sums those rows and adds the current hour live
from Task (a range of task_submitted_idx over at most an hour), so it reads a few
thousand rows instead of a month of tasks.

A refresh (every few minutes from the qcluster, and before every overview):
- rolls each hour of the window that has no RolledHour row: a fresh database, rows
  written around the sync (bench/fixtures.py), hours purge_tasks invalidated, and every
  hour once it is over (the current hour is never rolled);
- re-rolls the hours of tasks changed since the last refresh: the sync sets
  last_changed on every write of a task's fields, so nothing in its write path needs to
  know about the roll-up. MARGIN covers a batch whose `now` was taken long before its
  commit (so a burst of writes has its hours re-rolled for that long: the overview
  looks for changed tasks at most once a minute);
- forgets hours that left the window.
Refreshes take turns (a lock held by their transaction), so the web process and the
qcluster never count an hour twice, nor write an older reading over a newer one.

What last_changed cannot see: a task whose submit time moved stays counted in its old
hour too, and rows changed or deleted behind the mirror's back (raw SQL, the admin)
are not noticed. The scheduled refresh also re-rolls the SWEEP least recently computed
hours each time, so every hour of the window is recomputed at least once a day.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import or_

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    F,
    Func,
    IntegerField,
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Substr, Trunc
from django.utils import timezone

from tasks.db import bulk
from tasks.models import HourlyCount, RolledHour, Task

DAYS = 30  # the overview's window (stats.WINDOW_DAYS); older hours are dropped
HOUR = timedelta(hours=1)
# Longer than any sync transaction: a batch stamps last_changed with a `now` taken
# before its writes, so its rows may become visible up to that long after the stamp.
MARGIN = timedelta(minutes=10)
ANALYZE_AFTER = 24  # hours rolled at once (a fresh window, a big import) worth an ANALYZE
SWEEP = 4  # hours re-rolled by each scheduled refresh: 288 runs a day cover 720 hours
FAILURE = "FAILURE"
LOCK_KEY = 0x6D6A726F  # pg_advisory_xact_lock's key for refreshes ("mjro")
COUNT_FIELDS = ("hour", "source_id", "status", "action", "reason", "n")


# Hours


def hour_start(moment):
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window(now):
    """The hours a refresh keeps rolled: [first, current), the current hour excluded.

    The overview's window starts at a local midnight less than DAYS days ago, so it
    always lies inside.
    """
    current = hour_start(now)
    return hour_start(now - timedelta(days=DAYS)), current


def hour_of_submit():
    """The UTC hour a task was submitted in, by the database's own exact arithmetic.

    SQLite stores UTC text, whose first 13 characters name the hour ("2025-01-31 17");
    julianday() arithmetic would put many tasks submitted on the hour into the hour
    before (floating point). PostgreSQL: date_trunc on the UTC time.
    """
    if connection.vendor == "sqlite":
        return Substr("submitted", 1, 13, output_field=CharField())
    return Trunc("submitted", "hour", tzinfo=UTC)


def as_hour(value):
    """A value of hour_of_submit() as an aware datetime."""
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.astimezone(UTC)


def reason_of_failure():
    """The fail reason, cut to what HourlyCount keeps, for failures only."""
    cut = Substr("fail_reason", 1, HourlyCount.REASON_LENGTH)
    return Case(When(status=FAILURE, then=cut), default=Value(""), output_field=CharField())


def spans(hours):
    """Sorted hours as [start, end) ranges of consecutive hours."""
    out = []
    for hour in sorted(hours):
        if out and out[-1][1] == hour:
            out[-1][1] = hour + HOUR
        else:
            out.append([hour, hour + HOUR])
    return out


def within(field, ranges):
    """A filter for `field` in any of the [start, end) ranges: one query for all of them."""
    return reduce(or_, (Q(**{f"{field}__gte": a, f"{field}__lt": b}) for a, b in ranges))


# Refreshing


def refresh(sweep=0, at_most_every=None):
    """Bring the hourly counts up to date; two small reads when nothing changed.

    With at_most_every (the overview's), hours of changed tasks are re-rolled only if
    the last refresh that re-rolled any is that old: after a burst of writes (a first
    sync, an import) every refresh re-rolls their hours for MARGIN, and a page should
    pay for that once a minute, not on every request. Hours never rolled are always
    rolled.
    """
    # The stamp precedes the plan's reads: a change committed after them is stamped
    # later than this minus MARGIN, so the next refresh's scan of last_changed sees it.
    started = timezone.now()
    hours, stamp = plan(started, sweep, at_most_every)
    if not hours:
        return 0  # no transaction, no write lock
    with transaction.atomic():
        lock()
        # The plan may be a moment old: its hours are read again under the lock, and an
        # hour another refresh dirtied since is in the next refresh's plan.
        roll(hours, stamp)
        forget_old(started)
    return len(hours)


def scheduled_refresh():
    """The qcluster's schedule (tasks/bootstrap.py): refresh, and recompute a few hours."""
    return refresh(sweep=SWEEP)


def lock():
    """Make other refreshes (and purge_tasks' invalidation) wait for this transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        else:
            # SQLite has one write lock; a write takes it, even one that changes nothing
            # (the settings' BEGIN IMMEDIATE has taken it already).
            table = RolledHour._meta.db_table
            cursor.execute(f"UPDATE {table} SET computed = computed WHERE 1 = 0")  # noqa: S608


def plan(now, sweep=0, at_most_every=None):
    """The hours to (re)compute (never rolled, changed since the last refresh, swept),
    and the stamp to give them."""
    first, current = window(now)
    rolled = RolledHour.objects.filter(hour__gte=first, hour__lt=current)
    figures = rolled.aggregate(count=Count("hour"), last=Max("computed"))
    last = figures["last"]
    hours = set()
    if figures["count"] < (current - first) // HOUR:
        have = set(rolled.values_list("hour", flat=True))
        hours.update(h for h in every_hour(first, current) if h not in have)
    if last is not None and at_most_every is not None and now - last < at_most_every:
        # No scan of changes: the stamp stays the last scan's, so the next refresh that
        # scans starts where that one did and misses nothing.
        return hours, last
    if last is not None:
        hours.update(changed_hours(last - MARGIN, first, current))
    if sweep:
        oldest = rolled.exclude(hour__in=hours).order_by("computed", "hour")[:sweep]
        hours.update(oldest.values_list("hour", flat=True))
    return hours, now


def every_hour(first, end):
    return [first + i * HOUR for i in range((end - first) // HOUR)]


def changed_hours(since, first, current):
    """The hours of the window holding tasks written since `since` (task_last_changed_idx).

    The window is applied to the few hours found, not in SQL: a range on `submitted`
    would tempt SQLite into walking a month of task_submitted_idx instead.
    """
    buckets = (
        Task.objects.filter(last_changed__gte=since, submitted__isnull=False)
        .annotate(hour=hour_of_submit())
        .values_list("hour", flat=True)
        .order_by()
        .distinct()
    )
    hours = {as_hour(value) for value in buckets}
    return {hour for hour in hours if first <= hour < current}


def roll(hours, stamp):
    """Recompute the counts of `hours` from Task and replace what was stored for them."""
    ranges = spans(hours)
    rows = [(as_hour(hour), *rest) for hour, *rest in counted(ranges)]
    HourlyCount.objects.filter(within("hour", ranges)).delete()
    RolledHour.objects.filter(within("hour", ranges)).delete()
    # One statement a table, however many rows (the overview's first request rolls a month).
    bulk.insert_each(HourlyCount, COUNT_FIELDS, rows, by_copy=False)  # as counted by tests
    bulk.insert_each(RolledHour, ("hour", "computed"), [(hour, stamp) for hour in sorted(hours)])
    if len(hours) >= ANALYZE_AFTER:
        analyze(HourlyCount)


def analyze(model):
    """Give the planner the table's new size: from empty to a month of counts, without
    statistics PostgreSQL would sort the overview's rows instead of hashing them (and
    autovacuum, which would analyze it, may be off)."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def counted(ranges):
    """One GROUP BY over the tasks submitted in the ranges, by hour and what is counted."""
    return (
        Task.objects.filter(within("submitted", ranges))
        .annotate(hour=hour_of_submit(), reason=reason_of_failure())
        .values_list("hour", "source_id", "status", "action", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )


def forget_old(now):
    """Drop the hours that left the window."""
    first, _ = window(now)
    HourlyCount.objects.filter(hour__lt=first).delete()
    RolledHour.objects.filter(hour__lt=first).delete()


def invalidate(hours):
    """Make the next refresh recompute these hours (purge_tasks: deletes leave no trace in
    last_changed). Call it inside the transaction that changes their tasks: the lock
    keeps a refresh from writing counts it read before that transaction committed."""
    first, _ = window(timezone.now())
    hours = {hour_start(h) for h in hours}
    rolled = sorted(h for h in hours if h >= first)  # older hours have no counts to redo
    if not rolled:
        return
    lock()
    RolledHour.objects.filter(hour__in=rolled).delete()


# Reading


@dataclass
class Reading:
    """Tasks submitted since a moment: the roll-up's hours plus the live current hour.

    Grouped figures for the overview's tables and charts, not what a pass did (that is
    tasks/db/counts.py's Counts): a refresh reports only how many hours it rolled.
    """

    by_kind: list  # (source_id, status, action, n)
    by_day: list  # (day, status, n): day = whole 24 hours since `since`
    by_hour: list  # (hour, status, n) since `hours_from`, hours as aware UTC datetimes
    reasons: list  # (reason, n) of failures, most common first


def read(since, hours_from, now, top_reasons):
    """The counts of tasks submitted since `since`, up to now and beyond (a task stamped
    in the future is counted as the old aggregate over Task counted it).

    Hours before the current one come from HourlyCount; the current hour is counted
    live from Task. by_hour covers only the hours from `hours_from` on. The fail
    reasons are ranked over stored and live rows together, since the live hour can
    lift a reason that is not among the roll-up's top few.
    """
    live_from = hour_start(now)
    by_kind, by_day, by_hour, reasons = Counter(), Counter(), Counter(), Counter()
    for day, source_id, status, action, reason, n in days_and_kinds(since, live_from):
        by_kind[source_id, status, action] += n
        by_day[day, status] += n
        if status == FAILURE:
            reasons[reason] += n
    recent = HourlyCount.objects.filter(hour__gte=hours_from, hour__lt=live_from)
    for hour, status, n in recent.values_list("hour", "status").annotate(Sum("n")).order_by():
        by_hour[hour.astimezone(UTC), status] += n
    for hour, source_id, status, action, reason, n in live_counts(live_from):
        by_kind[source_id, status, action] += n
        by_day[(hour - since) // HOUR // 24, status] += n
        if hour >= hours_from:
            by_hour[hour, status] += n
        if status == FAILURE:
            reasons[reason] += n
    top = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:top_reasons]
    return Reading(
        by_kind=[(*key, n) for key, n in by_kind.items()],
        by_day=[(*key, n) for key, n in by_day.items()],
        by_hour=[(*key, n) for key, n in by_hour.items()],
        reasons=top,
    )


def rolled(since, live_from):
    """HourlyCount's rows of [since, live_from): on SQLite, read by a scan of the table
    (it holds little more than the window), which beats a lookup per row from the index."""
    at = F("hour")
    if connection.vendor == "sqlite":
        at = Func(at, template="+%(expressions)s", output_field=DateTimeField())
    return HourlyCount.objects.alias(at=at).filter(at__gte=since, at__lt=live_from).order_by()


def days_and_kinds(since, live_from):
    """One pass over the window: counts by day (24-hour steps from since, as the old
    aggregate over Task had them) and by source, status, action and fail reason."""
    return (
        rolled(since, live_from)
        .annotate(day=days_after(since))
        .values_list("day", "source_id", "status", "action", "reason")
        .annotate(total=Sum("n"))
        .order_by()
    )


def days_after(start):
    """Whole 24 hours from `start` to HourlyCount.hour, by the database's own arithmetic:
    exact for hours at whole hours from start (julianday's error is nudged away)."""
    if connection.vendor == "sqlite":
        return RawSQL(  # noqa: S611 (constant SQL, bound parameters)
            "CAST((julianday(hour) - julianday(%s)) * 24 + 0.001 AS INTEGER) / 24",
            [connection.ops.adapt_datetimefield_value(start)],
            output_field=IntegerField(),
        )
    return RawSQL(  # noqa: S611 (constant SQL, bound parameters)
        "floor(date_part('epoch', hour - %s) / 3600)::integer / 24",
        [start],
        output_field=IntegerField(),
    )


def live_counts(live_from):
    """The tasks not rolled yet, grouped like HourlyCount."""
    rows = (
        Task.objects.filter(submitted__gte=live_from)
        .annotate(hour=hour_of_submit(), reason=reason_of_failure())
        .values_list("hour", "source_id", "status", "action", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [(as_hour(hour), *rest) for hour, *rest in rows]
