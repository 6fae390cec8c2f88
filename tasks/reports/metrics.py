"""What /metrics reports: a prometheus_client collector over mjsite's own tables.

The collector runs its queries at every scrape, on a private registry (no process or
platform collectors), and health.py renders it with generate_latest. Every query is
bounded. The two full-table counts (tasks by status, the archive's backlog) are served by
indexes (task_status_action_idx, task_image_pending_idx), yet still read every row: about
half a second each on a million tasks in PostgreSQL, so they are kept in the cache for
MJ_METRICS_CACHE_SECONDS. Sync figures come from the SyncRun rows of the last day
(syncrun_source_started_idx), hook counts from Source.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tasks.models import Source, SyncRun, Task

log = logging.getLogger(__name__)

WINDOW = timedelta(days=1)
CACHE_KEY = "mjsite:metrics:counts"

# name: (family, HELP, label names), in the order they are exposed. The counters keep
# their exposed names: CounterMetricFamily drops a trailing _total and the text format
# puts it back on the HELP, TYPE and sample lines.
FAMILIES = {
    "mjsite_tasks": (GaugeMetricFamily, "Tasks in the mirror, by status.", ["status"]),
    "mjsite_archive_backlog": (
        GaugeMetricFamily,
        "Tasks whose image is not archived yet (image_state pending).",
        [],
    ),
    "mjsite_sync_passes_24h": (
        GaugeMetricFamily,
        "Sync passes started in the last 24 hours, by source and outcome.",
        ["source", "outcome"],
    ),
    "mjsite_sync_pass_max_seconds_24h": (
        GaugeMetricFamily,
        "The longest finished sync pass of the last 24 hours, by source and kind.",
        ["source", "kind"],
    ),
    "mjsite_sync_last_pass_seconds": (
        GaugeMetricFamily,
        "How long the last finished sync pass took, by source and kind (light or full).",
        ["source", "kind"],
    ),
    "mjsite_sync_last_success_timestamp_seconds": (
        GaugeMetricFamily,
        "When the last successful sync pass of each enabled source ended (Unix time).",
        ["source"],
    ),
    "mjsite_sync_last_pass_failed": (
        GaugeMetricFamily,
        "1 when the last finished sync pass of the source failed.",
        ["source"],
    ),
    "mjsite_hooks_received_total": (
        CounterMetricFamily,
        "Notify-hook callbacks accepted, by source.",
        ["source"],
    ),
    "mjsite_hooks_invalid_total": (
        CounterMetricFamily,
        "Notify-hook callbacks refused as invalid, by source.",
        ["source"],
    ),
    "mjsite_queued_jobs": (
        GaugeMetricFamily,
        "Jobs waiting in django-q2's queue (sync and archive passes).",
        [],
    ),
}


def family(name, samples=()):
    """The family `name` with its samples: (label values in FAMILIES' order, value)."""
    kind, help_text, labels = FAMILIES[name]
    metric = kind(name, help_text, labels=labels)
    for values, value in samples:
        metric.add_metric(values, value)
    return metric


class MirrorCollector:
    def describe(self):
        # The names without a query: register() checks them and never calls collect().
        return [family(name) for name in FAMILIES]

    def collect(self):
        now = timezone.now()
        counts = table_counts()
        yield family("mjsite_tasks", [([s], n) for s, n in sorted(counts["statuses"].items())])
        yield family("mjsite_archive_backlog", [([], counts["pending"])])
        sources = list(Source.objects.order_by("name").values("pk", "name", "enabled"))
        yield from sync_figures(sources, now)
        yield from hook_figures()
        queue = queued_tasks()
        if queue is not None:
            yield family("mjsite_queued_jobs", [([], queue)])


registry = CollectorRegistry()
registry.register(MirrorCollector())


def table_counts():
    seconds = settings.MJ_METRICS_CACHE_SECONDS
    if seconds > 0:
        try:
            cached = cache.get(CACHE_KEY)
        except Exception as exc:  # a cache that is down must not take /metrics with it
            log.warning("metrics: cache unavailable: %s", exc)
            cached = None
        if cached is not None:
            return cached
    rows = Task.objects.order_by().values_list("status").annotate(n=Count("pk"))
    counts = {
        "statuses": {status: n for status, n in rows},
        "pending": Task.objects.pending_images().count(),
    }
    if seconds > 0:
        try:
            cache.set(CACHE_KEY, counts, seconds)
        except Exception as exc:
            log.warning("metrics: cache unavailable: %s", exc)
    return counts


def sync_figures(sources, now):
    names = {s["pk"]: s["name"] for s in sources}
    # source_id IN (...) AND started >= since: a range of syncrun_source_started_idx each.
    recent = SyncRun.objects.filter(source_id__in=list(names), started__gte=now - WINDOW)
    recent = recent.order_by()
    passes = recent.values_list("source_id", "outcome").annotate(n=Count("pk"))
    took = ExpressionWrapper(F("ended") - F("started"), output_field=DurationField())
    longest = (
        recent.filter(ended__isnull=False)
        .exclude(outcome=SyncRun.Outcome.SKIPPED)
        .values_list("source_id", "kind")
        .annotate(longest=Max(took))
    )
    yield family("mjsite_sync_passes_24h", [([names[s], o], n) for s, o, n in sorted(passes)])
    yield family(
        "mjsite_sync_pass_max_seconds_24h",
        [([names[s], k], d.total_seconds()) for s, k, d in sorted(longest) if d is not None],
    )

    last_pass, last_ok, last_failed = [], [], []
    for s in sources:
        if not s["enabled"]:
            continue
        runs = SyncRun.objects.filter(source_id=s["pk"]).exclude(outcome=SyncRun.Outcome.SKIPPED)
        for kind in SyncRun.Kind.values:
            run = (
                runs.filter(kind=kind, ended__isnull=False)
                .order_by("-started")
                .only("started", "ended")
                .first()
            )
            if run is not None:
                last_pass.append(([s["name"], kind], run.duration.total_seconds()))
        ok = runs.filter(outcome=SyncRun.Outcome.OK).order_by("-started").values("ended").first()
        if ok is not None and ok["ended"] is not None:
            last_ok.append(([s["name"]], ok["ended"].timestamp()))
        latest = runs.filter(ended__isnull=False).order_by("-started").values("outcome").first()
        failed = latest is not None and latest["outcome"] == SyncRun.Outcome.FAILED
        last_failed.append(([s["name"]], 1 if failed else 0))
    yield family("mjsite_sync_last_pass_seconds", last_pass)
    yield family("mjsite_sync_last_success_timestamp_seconds", last_ok)
    yield family("mjsite_sync_last_pass_failed", last_failed)


def hook_figures():
    rows = list(
        Source.objects.order_by("name").values_list("name", "hooks_received", "hooks_invalid")
    )
    yield family("mjsite_hooks_received_total", [([name], n) for name, n, _ in rows])
    yield family("mjsite_hooks_invalid_total", [([name], n) for name, _, n in rows])


def queued_tasks():
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size() or 0)
    except Exception as exc:  # the broker being down is the worker's problem, not /metrics'
        log.warning("metrics: could not read the queue size: %s", exc)
        return None
