"""The accounts' roll-up: tasks per UTC hour, account, status and mode.

The accounts page shows each account's tasks by status over 7 days and 24 hours and
today's by mode. Counted from the tasks, that is a week of task_account_submitted_idx
per page (117,000 entries at a million tasks). AccountHour holds those counts per whole
hour, and AccountTotal their sums over the windows' whole hours as reads within the
current hour see them (the windows' whole hours move on once an hour). So a page reads
a few rows per account, and counts live from the tasks only the partial hours at the
windows' edges and what is not rolled yet (the current hour). A read in another hour
than the totals' (a page's `now` on the hour, a local midnight that is no UTC hour)
sums AccountHour instead: slower, as exact.

It is kept as the overview's roll-up is, with that roll-up's pieces (tasks/reports/
rollup.py: its lock, last_changed scan and MARGIN). A refresh, before every read:
- rolls every hour of the window the first time, or when the last roll left it;
- rolls the hours from `through` to the current hour once they are over;
- re-rolls the hours of tasks changed since the last scan, at most once a minute for a
  page (REFRESH_EVERY): a status change shows within a minute, a new task at once;
- forgets the hours that left the window, and sums the totals again.
Deleting tasks re-rolls their hours in the same transaction (forget).

Not seen, as for the overview: a task whose submit time moved stays counted in its old
hour too until that hour is re-rolled, and rows changed behind the sync's back. A read
reads the state and the totals in two statements: one that a refresh's commit falls
between, once an hour, counts that hour twice.
"""

from datetime import datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks.db import bulk
from tasks.models import AccountHour, AccountRollup, AccountTotal, Task
from tasks.reports.rollup import (
    ANALYZE_AFTER,
    HOUR,
    MARGIN,
    analyze,
    as_hour,
    changed_hours,
    every_hour,
    hour_of_submit,
    hour_start,
    lock,
    spans,
    within,
)

WEEK, DAY = timedelta(days=7), timedelta(hours=24)
WINDOWS = ("week", "day", "today")  # AccountTotal's sums, in the order of starts()
REFRESH_EVERY = timedelta(minutes=1)
KEY = ("account", "status", "mode")
FIELDS = ("hour", *KEY, "n")


def local_midnight(now):
    return timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))


def starts(now):
    """Where the figures' windows begin; local midnight lies within the week."""
    return (now - WEEK, now - DAY, local_midnight(now))


def firsts(starts):
    """The first whole hour of each window: its rolled part begins there."""
    return [ceil_hour(start) for start in starts]


def ceil_hour(moment):
    start = hour_start(moment)
    return start if start == moment else start + HOUR


def state():
    return AccountRollup.objects.filter(pk=1).first()


# Refreshing


def refresh(at_most_every=None):
    """Bring the roll-up up to date; return its state for counts() (None: nothing rolled,
    everything is counted live). One small read when nothing is due."""
    started = timezone.now()
    current = state()
    hours, _ = plan(current, started, at_most_every)
    if not hours:
        return current
    with transaction.atomic():
        lock()
        # Planned again under the lock: another refresh may have done the work.
        current = state()
        hours, scanned = plan(current, started, at_most_every)
        if not hours:
            return current
        recount(hours)
        AccountHour.objects.filter(hour__lt=window_start(started)).delete()
        current = current or AccountRollup(pk=1)
        current.through, current.scanned = hour_start(started), scanned
        sum_totals(current, started)
        return current


def scheduled_refresh():
    """The qcluster's schedule (tasks/bootstrap.py): the page's refresh, ahead of it."""
    current = refresh()
    return current and current.through.isoformat()  # a result django-q can store


def window_start(now):
    return hour_start(now - WEEK)


def plan(current, now, at_most_every=None):
    """The hours to (re)count, and the scan stamp to keep: rolled hours hold changes
    made before it (minus MARGIN)."""
    first, end = window_start(now), hour_start(now)
    if current is None or current.through <= first:
        return set(every_hour(first, end)), now  # every hour is counted afresh
    hours = set(every_hour(current.through, end))
    if at_most_every is not None and now - current.scanned < at_most_every:
        return hours, current.scanned
    # Only hours already rolled: the hours from `through` on are counted anyway.
    hours.update(changed_hours(current.scanned - MARGIN, first, current.through))
    return hours, now


def recount(hours):
    """Count the tasks of `hours` again and replace what was stored for them."""
    ranges = spans(hours)
    rows = (
        Task.objects.filter(within("submitted", ranges))
        .exclude(account="")
        .annotate(hour=hour_of_submit())
        .values_list("hour", *KEY)
        .annotate(n=Count("id"))
        .order_by()
    )
    rows = [(as_hour(hour), *rest) for hour, *rest in rows]
    AccountHour.objects.filter(within("hour", ranges)).delete()
    bulk.insert_each(AccountHour, FIELDS, rows)
    if len(hours) >= ANALYZE_AFTER:
        analyze(AccountHour)


def forget(submitted):
    """Count again the hours of deleted tasks (their submit times): a delete leaves no
    last_changed behind. Call it inside the deleting transaction, after the delete."""
    lock()
    current, now = state(), timezone.now()
    if current is None:
        return  # nothing rolled yet
    hours = {hour_start(moment) for moment in submitted}
    rolled = {hour for hour in hours if window_start(now) <= hour < current.through}
    if rolled:
        recount(rolled)
        sum_totals(current, now)


def sum_totals(current, now):
    """Sum the rolled hours over the windows of a read at `now` into AccountTotal, and
    save the state with the windows' first hours: reads within this hour find theirs."""
    week, day, today = firsts(starts(now))
    rows = list(summed(AccountHour.objects.filter(hour__lt=current.through), (week, day, today)))
    AccountTotal.objects.all().delete()
    bulk.insert_each(AccountTotal, (*KEY, *WINDOWS), rows)
    current.week_from, current.day_from, current.today_from = week, day, today
    current.save()


def summed(hours, firsts):
    """AccountHour rows summed per account, status and mode over each window's whole
    hours (from its first to the end of `hours`)."""
    sums = {
        name: Coalesce(Sum("n", filter=Q(hour__gte=first)), 0)
        for name, first in zip(WINDOWS, firsts, strict=True)
    }
    return hours.filter(hour__gte=min(firsts)).values_list(*KEY).annotate(**sums).order_by()


# Reading


def counts(channels, starts, current):
    """(channel, status, mode, n for each of `starts`) rows: the tasks of these channels
    submitted since each start, as the sum of the rows of one UNION ALL (a channel,
    status and mode may come in several rows). `current` is refresh()'s state.

    Each window [start, ∞) is read as the rolled whole hours [first, through) and live
    from the tasks, [start, first) and [max(through, first), ∞).
    """
    ceils = firsts(starts)
    # The rolled hours are those of the week before `through`: a read of an earlier
    # week (a `now` in the past) counts everything live.
    rolls = current is not None and min(ceils) >= current.through - WEEK
    through = current.through if rolls else None
    tails = [max(through, ceil) if through else ceil for ceil in ceils]
    live = [
        Q(submitted__gte=start, submitted__lt=ceil) | Q(submitted__gte=tail)
        for start, ceil, tail in zip(starts, ceils, tails, strict=True)
    ]
    parts = [rolled(channels, ceils, current)] if through else []
    tasks = Task.objects.filter(account__in=channels).values_list(*KEY)
    windows = {name: Count("id", filter=q) for name, q in zip(WINDOWS, live, strict=True)}
    # One range of task_account_submitted_idx per stretch of live time, not an OR of
    # them, which the planners would not bound.
    for start, end in stretches(starts, ceils, tails):
        stretch = tasks.filter(submitted__gte=start)
        if end is not None:
            stretch = stretch.filter(submitted__lt=end)
        parts.append(stretch.annotate(**windows).order_by())
    first, *rest = parts
    return first.union(*rest, all=True) if rest else first


def rolled(channels, ceils, current):
    """The windows' rolled hours: the totals when they are of these windows, else summed."""
    if [current.week_from, current.day_from, current.today_from] == ceils:
        return AccountTotal.objects.filter(account__in=channels).values_list(*KEY, *WINDOWS)
    hours = AccountHour.objects.filter(account__in=channels, hour__lt=current.through)
    return summed(hours, ceils)


def stretches(starts, ceils, tails):
    """The live time of every window as disjoint [start, end) ranges (end None: open)."""
    ranges = [(start, ceil) for start, ceil in zip(starts, ceils, strict=True) if start < ceil]
    ranges.append((min(tails), None))
    merged = []
    for start, end in sorted(ranges, key=lambda r: r[0]):
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            last = merged[-1][1]
            merged[-1][1] = None if end is None or last is None else max(last, end)
        else:
            merged.append([start, end])
    return merged
