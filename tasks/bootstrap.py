"""Rows the running system needs: the sync schedules and the `default` source.

Called after every `migrate` (a post_migrate handler) and by `sync_tasks`; both
functions are idempotent, so running them again changes nothing.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from tasks.models import Channel, Source, SourceKind

SCHEDULES = {
    # name: (function, minutes: a setting's name or a number)
    "mjsite: light sync": ("tasks.ingest.sync.light_pass", "MJ_SYNC_MINUTES"),
    "mjsite: full sync": ("tasks.ingest.sync.full_pass", "MJ_FULL_SYNC_MINUTES"),
    "mjsite: accounts": ("tasks.ingest.sync.accounts_pass", "MJ_ACCOUNT_MINUTES"),
    "mjsite: image archive": ("tasks.archive.passes.archive_pass", "MJ_ARCHIVE_MINUTES"),
    # The overview refreshes the roll-up itself too; this keeps the work off its
    # requests and recomputes a few hours each time (tasks/reports/rollup.py's SWEEP).
    "mjsite: overview roll-up": ("tasks.reports.rollup.scheduled_refresh", 5),
    # The same for the accounts page's hours: its first view after a quiet week would
    # otherwise pay for rolling the week (seconds at a million tasks).
    "mjsite: accounts roll-up": ("tasks.accounts.rollup.scheduled_refresh", 5),
    # And for /usage/'s days: the first roll after a deploy takes minutes at a million tasks.
    "mjsite: usage roll-up": ("tasks.usage.rollup.refresh", 5),
    "mjsite: alerts": ("tasks.alerts.incidents.scheduled_evaluation", "MJ_ALERT_MINUTES"),
}


def ensure_schedules():
    from django_q.models import Schedule

    for name, (func, every) in SCHEDULES.items():
        minutes = max(1, int(getattr(settings, every) if isinstance(every, str) else every))
        with transaction.atomic():
            # Schedule.name is not unique in the database: keep the oldest row
            # of ours and drop any duplicates, so update_or_create cannot fail.
            rows = list(Schedule.objects.filter(name=name).order_by("pk"))
            for extra in rows[1:]:
                extra.delete()
            Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": minutes,
                    "repeats": -1,
                },
            )


def ensure_default_source():
    """Create or update the source named `default` from MJ_PROXY_URL, when it is set."""
    if not settings.MJ_PROXY_URL:
        return None
    source, _ = Source.objects.update_or_create(
        name="default",
        defaults={
            "base_url": settings.MJ_PROXY_URL.rstrip("/"),
            "secret": settings.MJ_API_SECRET,
            "auth_header": settings.MJ_AUTH_HEADER or "mj-api-secret",
            "kind": default_kind(),
            "admin_token": settings.MJ_ADMIN_TOKEN,
            "admin_user": settings.MJ_ADMIN_USER,
        },
    )
    return source


def default_kind():
    kind = settings.MJ_PROXY_KIND
    if kind not in SourceKind.values:
        raise ImproperlyConfigured(
            f"MJ_PROXY_KIND is {kind[:40]!r}; use one of {', '.join(SourceKind.values)}"
        )
    return kind


def ensure_alert_channel():
    """Create or update the channel `default` (every rule, every source) from MJ_ALERT_URLS."""
    if not settings.MJ_ALERT_URLS:
        return None
    channel, _ = Channel.objects.update_or_create(
        name="default", defaults={"url": settings.MJ_ALERT_URLS}
    )
    return channel
