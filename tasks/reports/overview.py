"""The overview's figures over a recent window.

Every query is bounded: counts, charts and fail reasons over the last WINDOW_DAYS come
from the hourly roll-up (tasks/reports/rollup.py, a row per hour and kind of task) plus the
current hour counted live; percentiles over the newest SAMPLE tasks. So the overview
costs about the same with a million tasks as with ten thousand.

The image archive's status line is no exception: the backlog is counted by its partial
index, the other states come from the counts the archive passes keep.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, FloatField, Func, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.formats import date_format

from tasks.alerts.incidents import open_incidents
from tasks.archive import status as archive_status
from tasks.models import FINISHED_STATUSES, Account, Source, SyncRun, Task
from tasks.reports import rollup

WINDOW_DAYS = rollup.DAYS
CACHE_KEY, CACHE_SECONDS = "mjsite:overview", 60
HOURS = 48
SAMPLE = 2500  # the newest tasks whose successes give the percentiles
TOP_REASONS = 8

SUCCESS, FAILURE = "SUCCESS", "FAILURE"


@dataclass
class SourceFigures:
    source: Source
    total: int = 0
    finished: int = 0
    failed: int = 0
    statuses: Counter = field(default_factory=Counter)
    queue_wait: dict = field(default_factory=dict)
    run_time: dict = field(default_factory=dict)
    last_run: SyncRun | None = None
    last_ok: object = None
    warning: str = ""

    @property
    def failure_rate(self):
        return self.failed / self.finished if self.finished else None


def overview(now=None):
    """The overview's figures, computed at most once a minute per process."""
    if now is not None:
        return compute(now)
    return cache.get_or_set(CACHE_KEY, lambda: compute(timezone.now()), CACHE_SECONDS)


def compute(now):
    # The window: the last WINDOW_DAYS calendar days, today included.
    first_day = timezone.localdate(now) - timedelta(days=WINDOW_DAYS - 1)
    since = timezone.make_aware(datetime.combine(first_day, time.min))
    sources = sources_with_health(now)
    by_source = {s.pk: SourceFigures(source=s) for s in sources}
    for s in sources:
        by_source[s.pk].last_run = s.last_run
        by_source[s.pk].last_ok = s.last_ok
        by_source[s.pk].warning = s.warning

    # Hourly counts (tasks/reports/rollup.py) plus the current hour, live: a few thousand rows
    # however many tasks the window holds.
    rollup.refresh(at_most_every=timedelta(seconds=CACHE_SECONDS))
    counts = rollup.read(since, chart_start(now), now, TOP_REASONS)
    statuses, actions = Counter(), Counter()
    for source_id, status, action, n in counts.by_kind:
        statuses[status] += n
        actions[action] += n
        figures = by_source.get(source_id)
        if figures is not None:
            figures.total += n
            figures.statuses[status] += n
            if status in FINISHED_STATUSES:
                figures.finished += n
            if status == FAILURE:
                figures.failed += n

    # The newest SAMPLE tasks by the list's own index, successes kept in Python: a
    # status filter in SQL would make SQLite walk the status index and sort instead.
    # The durations come as seconds from SQL: cheaper than 7,500 datetimes in Python.
    sample = [
        row[1:]
        for row in Task.objects.filter(submitted__isnull=False)
        .order_by("-submitted", "-id")
        .annotate(wait=seconds_between("submitted", "started"))
        .annotate(run=seconds_between("started", "finished"))
        .values_list("status", "source_id", "wait", "run")[:SAMPLE]
        if row[0] == SUCCESS and row[2] is not None and row[3] is not None
    ]
    waits, runs = defaultdict(list), defaultdict(list)
    for source_id, wait, run in sample:
        for key in (source_id, None):
            # Whole milliseconds: julianday() arithmetic is exact to about 50 µs.
            waits[key].append(round(wait, 3))
            runs[key].append(round(run, 3))
    for source_id, figures in by_source.items():
        figures.queue_wait = percentiles(waits.get(source_id, []))
        figures.run_time = percentiles(runs.get(source_id, []))

    finished = sum(statuses[s] for s in FINISHED_STATUSES)
    return {
        "window_days": WINDOW_DAYS,
        "computed": now,
        "total": sum(statuses.values()),
        "statuses": statuses.most_common(),
        "actions": actions.most_common(),
        "failure_rate": statuses[FAILURE] / finished if finished else None,
        "reasons": counts.reasons,
        "queue_wait": percentiles(waits.get(None, [])),
        "run_time": percentiles(runs.get(None, [])),
        "sample_size": len(sample),
        "sources": list(by_source.values()),
        "daily": daily_chart(first_day, counts.by_day),
        "hourly": hourly_chart(now, counts.by_hour),
        "images": image_status(),
        "accounts": account_line(),
        "open_incidents": open_incidents(),
    }


def image_status():
    """The archive's status line: `pending` counted now (task_image_pending_idx: the
    backlog, a small part of the table), the other states as the archive passes keep
    them (tasks/archive/status.py, load_status; None before the first pass)."""
    status = archive_status.load_status() or {}
    return {
        "archived": status.get("archived"),
        "pending": Task.objects.pending_images().count(),
        "failed": status.get("failed"),
        "lost": status.get("lost"),
        "updated": status.get("updated"),
    }


def account_line():
    """The Discord accounts line: N enabled of M listed, and each source left without an
    enabled one (a table of a few dozen rows)."""
    counts = Account.objects.current().aggregate(
        enabled=Count("pk", filter=Q(enabled=True)), total=Count("pk")
    )
    return {**counts, "without_enabled": Account.objects.sources_without_enabled_account()}


def seconds_between(start, end):
    """end - start in seconds (a float), by the database's own arithmetic."""
    if connection.vendor == "sqlite":
        template, joiner = "((julianday(%(expressions)s)) * 86400.0)", ") - julianday("
    else:
        template, joiner = "date_part('epoch', %(expressions)s)", " - "
    return Func(F(end), F(start), template=template, arg_joiner=joiner, output_field=FloatField())


def percentiles(values):
    if not values:
        return {}
    values = sorted(values)

    def pick(percent):
        # Nearest rank, an observed value, never an interpolation between two: the
        # ceil(percent * n / 100)-th smallest, in integers (round() would halve to even).
        index = -(-percent * len(values) // 100) - 1
        return timedelta(seconds=values[index])

    return {"p50": pick(50), "p95": pick(95), "n": len(values)}


def sources_with_health(now):
    """Sources with their last sync run and last OK run; a warning when one needs a look."""
    runs = SyncRun.objects.filter(source=OuterRef("pk")).exclude(outcome="skipped")
    sources = list(
        Source.objects.order_by("name")
        .only("name", "kind", "enabled")
        .annotate(
            last_run_id=Subquery(runs.order_by("-started").values("pk")[:1]),
            last_ok=Subquery(runs.filter(outcome="ok").order_by("-started").values("ended")[:1]),
        )
    )
    last = SyncRun.objects.in_bulk([s.last_run_id for s in sources if s.last_run_id])
    silent_after = timedelta(minutes=3 * settings.MJ_FULL_SYNC_MINUTES)
    for s in sources:
        s.last_run = last.get(s.last_run_id)
        s.warning = ""
        s.silent_minutes = int(silent_after.total_seconds() // 60)
        if not s.enabled:
            continue
        if s.last_run is not None and s.last_run.outcome == SyncRun.Outcome.FAILED:
            s.warning = "failing"
        elif s.last_ok is None or s.last_ok < now - silent_after:
            s.warning = "silent"
    return sources


# Charts: bars with their geometry worked out here, drawn by the template as SVG.

CHART_W, CHART_H = 720, 160


def bars(buckets, labels, every):
    """buckets: list of (label key, success, failure, other) in order."""
    top = max((s + f + o for _, s, f, o in buckets), default=0) or 1
    width = CHART_W / max(1, len(buckets))
    out = []
    for i, (key, s, f, o) in enumerate(buckets):
        x = round(i * width + 1, 1)
        y = CHART_H
        stack = []
        for kind, n in (("success", s), ("failure", f), ("other", o)):
            h = round(n / top * (CHART_H - 14), 1)
            y = round(y - h, 1)
            if n:
                stack.append({"kind": kind, "y": y, "h": h, "n": n})
        out.append(
            {
                "x": x,
                "w": round(max(1.0, width - 2), 1),
                "stack": stack,
                "total": s + f + o,
                "success": s,
                "failure": f,
                "label": labels(key),
                "tick": i % every == 0,
                "text_x": round(x + width / 2, 1),
            }
        )
    return {
        "bars": out,
        "max": top,
        "width": CHART_W,
        "height": CHART_H,
        "view_height": CHART_H + 22,  # room for the tick labels below the axis
        "tick_y": CHART_H + 15,
    }


def slot(status):
    return 0 if status == SUCCESS else 1 if status == FAILURE else 2


# Hours are UTC hours, so a local day or hour is a whole number of them only where
# the offset from UTC is a whole number of hours. With a half-hour offset (India,
# +5:30) each hour is counted in the local hour and day its start falls in: bars and
# the window's start are off by half an hour. Days are 24-hour steps from the window's
# first midnight, as they always were here: across a DST change they are an hour off.


def daily_chart(first_day, by_day):
    days = defaultdict(lambda: [0, 0, 0])
    for day, status, n in by_day:
        days[day][slot(status)] += n
    return bars(
        [(first_day + timedelta(days=i), *days.get(i, (0, 0, 0))) for i in range(WINDOW_DAYS)],
        lambda d: date_format(d, "M j"),
        every=5,
    )


def chart_start(now):
    """The first hour of the hourly chart, local."""
    return (timezone.localtime(now) - timedelta(hours=HOURS - 1)).replace(
        minute=0, second=0, microsecond=0
    )


def hourly_chart(now, by_hour):
    start = chart_start(now)
    counts = defaultdict(lambda: [0, 0, 0])
    for hour, status, n in by_hour:
        counts[(hour - start) // timedelta(hours=1)][slot(status)] += n
    buckets = [(start + timedelta(hours=i), *counts.get(i, (0, 0, 0))) for i in range(HOURS)]
    return bars(buckets, lambda h: timezone.localtime(h).strftime("%H:00"), every=6)
