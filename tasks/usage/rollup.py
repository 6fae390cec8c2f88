"""Usage counts per day in TIME_ZONE, kept up to date incrementally.

DailyUsage holds, per local day, source, caller, account, action, mode and status, how
many tasks were submitted, their run time, how many failed ones the proxy charged, and
what they cost at the prices of that day (priced when the day is rolled); cells.py sums
those rows per grouping whenever they are written. UsageRollup (one row) says through
which UTC hour they are counted: tasks submitted since (the current hour, normally) are
counted live from Task, a range of task_submitted_idx, and priced on the way.

A refresh (before every /usage/ answer):
- the first, or the first after TIME_ZONE changed, rolls every task once;
- when an hour has passed, re-rolls the days from the old `through` to the current hour;
- re-rolls the days of tasks changed since the last roll (task_last_changed_idx, as the
  overview's roll-up does: the sync stamps last_changed on every write; tasks/reports/
  rollup.MARGIN covers a batch committed after its stamp). Pages look for changes at
  most once a minute; a new task is counted at once all the same, live;
- re-rolls the days from UsageRollup.stale_from on, which a price saved or deleted sets
  to its valid_from (tasks/models.py): a change never rewrites an earlier day.
Refreshes take turns with the overview's under its lock.

Not seen (as for the overview's roll-up): a task whose submit time moved stays counted
on its old day too, and rows deleted behind the sync's back are counted until their day
is rolled again.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, FloatField, IntegerField, Min, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from tasks.db import bulk
from tasks.models import DailyUsage, Task, UsageCell, UsageRollup
from tasks.reports.overview import seconds_between
from tasks.reports.rollup import MARGIN, analyze, hour_start, lock, within
from tasks.usage import cells, prices

KEY = ("source_id", "caller", "account", "action", "mode", "status")
FIELDS = ("day", *KEY, "tasks", "run_seconds", "quota_charged")
PRICED_FIELDS = (*FIELDS, "charged", "currency", "cost")
UNCHARGED = ("FAILURE", "CANCEL")
# new-api's row of a task it billed: "quota": a number above zero (tasks/ingest's newapi rows).
CHARGED_QUOTA = r'"quota"\s*:\s*0*[1-9]'


def zone():
    return ZoneInfo(settings.TIME_ZONE)


def day_start(day):
    """The first moment of a local day, aware."""
    return timezone.make_aware(datetime.combine(day, time.min), zone())


def local_day(moment):
    return timezone.localtime(moment, zone()).date()


def days_between(first, last):
    """The local days from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_spans(days):
    """Sorted days as [start, end) ranges of submit times, consecutive days merged."""
    out = []
    for day in sorted(days):
        start, end = day_start(day), day_start(day + timedelta(days=1))
        if out and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end])
    return out


# Refreshing


def refresh(at_most_every=None):
    """Bring DailyUsage up to date; two small reads when nothing changed.

    With at_most_every (the page's), the days of changed tasks are looked for only if
    the last roll is that old: after a burst of writes every refresh would re-roll
    today for MARGIN, and a page should pay for that once a minute.
    """
    started = timezone.now()
    if plan(UsageRollup.objects.filter(pk=1).first(), started, at_most_every) == set():
        return 0  # no transaction, no write lock
    with transaction.atomic():
        lock()
        # Planned again under the lock: another refresh may have done the work. The row
        # stays locked until the end: a price saved meanwhile marks it after this roll.
        state = UsageRollup.objects.select_for_update().filter(pk=1).first()
        days = plan(state, started, at_most_every)
        if days is None:
            roll_everything(started)
        elif days:
            roll(days, started)
        return len(days or ())


def plan(state, now, at_most_every=None):
    """The local days to roll again, None for everything; empty for nothing."""
    current = hour_start(now)
    if state is None or state.zone != settings.TIME_ZONE:
        return None
    days = set()
    if state.through < current:
        days.update(days_between(local_day(state.through), local_day(current)))
    if at_most_every is None or now - state.scanned >= at_most_every:
        days.update(changed_days(state.scanned - MARGIN))
    if state.stale_from is not None:
        days.update(stale_days(state.stale_from, current))
    # A day that begins at or after the current hour holds only live tasks.
    return {day for day in days if day_start(day) < current}


def changed_days(since):
    """The local days of tasks written since `since` (task_last_changed_idx)."""
    return set(
        Task.objects.filter(last_changed__gte=since, submitted__isnull=False)
        .annotate(day=TruncDate("submitted", tzinfo=zone()))
        .values_list("day", flat=True)
        .order_by()
        .distinct()
    )


def stale_days(since, current):
    """The rolled days from `since` on (a price changed from then on)."""
    first = DailyUsage.objects.aggregate(first=Min("day"))["first"]
    if first is None:
        return []
    return days_between(max(since, first), local_day(current))


def roll(days, now):
    """Count the tasks of `days` submitted before the current hour again."""
    recount(days, now)
    save_state(hour_start(now), now)


def recount(days, now):
    current = hour_start(now)
    spans = [(start, min(end, current)) for start, end in day_spans(days)]
    rows = priced(counted(Task.objects.filter(within("submitted", spans))))
    cells.forget(days)
    DailyUsage.objects.filter(within("day", cells.day_ranges(days))).delete()
    bulk.insert_each(DailyUsage, PRICED_FIELDS, rows)
    cells.write(days)


def forget(submitted):
    """Count again the days of deleted tasks (their submit times): a delete leaves no
    last_changed for the next refresh to find. Call it inside the deleting transaction,
    after the delete."""
    state = UsageRollup.objects.filter(pk=1).first()
    if state is None or state.zone != settings.TIME_ZONE:
        return  # the next refresh rolls everything anyway
    lock()
    recount({local_day(moment) for moment in submitted}, timezone.now())


def roll_everything(now):
    current = hour_start(now)
    cells.forget()
    DailyUsage.objects.all().delete()
    rows = priced(counted(Task.objects.filter(submitted__lt=current)))
    bulk.insert_each(DailyUsage, PRICED_FIELDS, rows)
    cells.write()
    # Without statistics PostgreSQL sorts a month of cells by their text to group them
    # (three times the hashing it chooses once it knows their number).
    analyze(DailyUsage)
    analyze(UsageCell)
    save_state(current, now)


def save_state(through, scanned):
    UsageRollup.objects.update_or_create(
        pk=1,
        defaults={"zone": settings.TIME_ZONE, "through": through, "scanned": scanned,
                  "stale_from": None},
    )  # fmt: skip


def counted(tasks):
    """One GROUP BY: the DailyUsage rows of `tasks`, as tuples in FIELDS order."""
    charged = Case(
        When(
            status__in=UNCHARGED,
            then=Case(When(raw__regex=CHARGED_QUOTA, then=Value(1)), default=Value(0)),
        ),
        default=Value(0),
        output_field=IntegerField(),
    )
    run = Case(
        When(
            Q(started__isnull=False) & Q(finished__isnull=False),
            then=seconds_between("started", "finished"),
        ),
        default=Value(0.0),
        output_field=FloatField(),
    )
    return list(
        tasks.filter(submitted__isnull=False)
        .annotate(day=TruncDate("submitted", tzinfo=zone()))
        .values_list("day", *KEY)
        .annotate(n=Count("id"), run=Coalesce(Sum(run), 0.0), charged=Sum(charged))
        .order_by()
    )


def priced(rows):
    """Rows of FIELDS with what they cost, as PRICED_FIELDS: how many tasks are charged,
    in which currency ("" where no price applies) and for how many COST_UNITs."""
    book = prices.PriceBook()
    out = []
    for row in rows:
        day, source_id, _caller, _account, action, mode, status, n, _run, quota = row
        price = book.price_for(day, source_id, action, mode)
        charged = prices.charged(price, status, n, quota)
        currency = price.currency if price is not None else ""
        out.append((*row, charged, currency, prices.cost_units(price, charged)))
    return out


# Reading


def live(first, last, now=None):
    """Priced rows (PRICED_FIELDS) of the tasks submitted on the local days first..last
    that no roll has counted yet: those of the current hour, normally."""
    state = UsageRollup.objects.filter(pk=1).first()
    through = state.through if state else hour_start(now or timezone.now())
    start, end = day_start(first), day_start(last + timedelta(days=1))
    if through >= end:
        return []
    return priced(
        counted(Task.objects.filter(submitted__gte=max(start, through), submitted__lt=end))
    )
