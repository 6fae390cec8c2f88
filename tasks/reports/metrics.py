"""What /metrics reports, in Prometheus' text format (written by hand: it is simple).

Every query is bounded. The two full-table counts (tasks by status, the archive's
backlog) are served by indexes (task_status_action_idx, task_image_pending_idx), yet
still read every row: about half a second each on a million tasks in PostgreSQL, so
they are kept in the cache for MJ_METRICS_CACHE_SECONDS. Sync figures come from the
SyncRun rows of the last day (syncrun_source_started_idx), hook counts from Source.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max
from django.utils import timezone

from tasks.models import Source, SyncRun, Task

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WINDOW = timedelta(days=1)
CACHE_KEY = "mjsite:metrics:counts"


class Exposition:
    """Metric families in the order they are added, each with its HELP and TYPE."""

    def __init__(self):
        self.lines = []

    def family(self, name, kind, help_text, samples):
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{format_labels(labels)} {format_value(value)}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels):
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def format_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(now=None):
    now = now or timezone.now()
    out = Exposition()
    counts = table_counts()
    out.family(
        "mjsite_tasks",
        "gauge",
        "Tasks in the mirror, by status.",
        [({"status": status}, n) for status, n in sorted(counts["statuses"].items())],
    )
    out.family(
        "mjsite_archive_backlog",
        "gauge",
        "Tasks whose image is not archived yet (image_state pending).",
        [({}, counts["pending"])],
    )

    sources = list(Source.objects.order_by("name").values("pk", "name", "enabled"))
    names = {s["pk"]: s["name"] for s in sources}
    sync_figures(out, sources, names, now)
    hook_figures(out)
    queue = queued_tasks()
    if queue is not None:
        out.family(
            "mjsite_queued_jobs",
            "gauge",
            "Jobs waiting in django-q2's queue (sync and archive passes).",
            [({}, queue)],
        )
    return out.text()


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


def sync_figures(out, sources, names, now):
    since = now - WINDOW
    ids = [s["pk"] for s in sources]
    # source_id IN (...) AND started >= since: a range of syncrun_source_started_idx each.
    recent = SyncRun.objects.filter(source_id__in=ids, started__gte=since).order_by()
    passes = recent.values_list("source_id", "outcome").annotate(n=Count("pk"))
    took = ExpressionWrapper(F("ended") - F("started"), output_field=DurationField())
    longest = (
        recent.filter(ended__isnull=False)
        .exclude(outcome=SyncRun.Outcome.SKIPPED)
        .values_list("source_id", "kind")
        .annotate(longest=Max(took))
    )
    out.family(
        "mjsite_sync_passes_24h",
        "gauge",
        "Sync passes started in the last 24 hours, by source and outcome.",
        [({"source": names[s], "outcome": o}, n) for s, o, n in sorted(passes)],
    )
    out.family(
        "mjsite_sync_pass_max_seconds_24h",
        "gauge",
        "The longest finished sync pass of the last 24 hours, by source and kind.",
        [
            ({"source": names[s], "kind": k}, d.total_seconds())
            for s, k, d in sorted(longest)
            if d is not None
        ],
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
                labels = {"source": s["name"], "kind": kind}
                last_pass.append((labels, run.duration.total_seconds()))
        ok = runs.filter(outcome=SyncRun.Outcome.OK).order_by("-started").values("ended").first()
        if ok is not None and ok["ended"] is not None:
            last_ok.append(({"source": s["name"]}, ok["ended"].timestamp()))
        latest = runs.filter(ended__isnull=False).order_by("-started").values("outcome").first()
        failed = latest is not None and latest["outcome"] == SyncRun.Outcome.FAILED
        last_failed.append(({"source": s["name"]}, failed))
    out.family(
        "mjsite_sync_last_pass_seconds",
        "gauge",
        "How long the last finished sync pass took, by source and kind (light or full).",
        last_pass,
    )
    out.family(
        "mjsite_sync_last_success_timestamp_seconds",
        "gauge",
        "When the last successful sync pass of each enabled source ended (Unix time).",
        last_ok,
    )
    out.family(
        "mjsite_sync_last_pass_failed",
        "gauge",
        "1 when the last finished sync pass of the source failed.",
        last_failed,
    )


def hook_figures(out):
    rows = list(
        Source.objects.order_by("name").values_list("name", "hooks_received", "hooks_invalid")
    )
    out.family(
        "mjsite_hooks_received_total",
        "counter",
        "Notify-hook callbacks accepted, by source.",
        [({"source": name}, received) for name, received, _ in rows],
    )
    out.family(
        "mjsite_hooks_invalid_total",
        "counter",
        "Notify-hook callbacks refused as invalid, by source.",
        [({"source": name}, invalid) for name, _, invalid in rows],
    )


def queued_tasks():
    from django_q.brokers import get_broker

    try:
        return int(get_broker().queue_size() or 0)
    except Exception as exc:  # the broker being down is the worker's problem, not /metrics'
        log.warning("metrics: could not read the queue size: %s", exc)
        return None
