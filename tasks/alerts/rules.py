"""The alert rules: each looks at the mirror and says which conditions hold now.

A rule's check takes its thresholds and the moment of the evaluation and returns the
conditions that hold, one `Finding` each, keyed by what it is about ("source:3"): the
incident of a key that is no longer found is resolved. Every check is cheap at a million
tasks: it reads the sync runs by source (syncrun_source_started_idx), the recently changed
tasks (task_last_changed_idx), the unfinished ones (task_unfinished_idx), the archive's
backlog (task_image_pending_idx) or the counts the archive keeps, never the whole table.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Min
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks.models import FINISHED_STATUSES, Account, ArchiveStatus, Source, SyncRun, Task


@dataclass
class Finding:
    key: str
    summary: str  # what, and how bad
    source: Source | None = None
    link: str = ""  # a path: the tasks or sync runs behind it


@dataclass(frozen=True)
class Rule:
    key: str
    title: str
    params: dict  # threshold name: default (tasks/migrations/0018_alerts.py has the same)
    check: object  # (params, now, rule row) -> [Finding]


def source_key(source):
    return f"source:{source.pk}"


def list_link(**params):
    return reverse("tasks:list") + "?" + urlencode(params, doseq=True)


def sync_runs_link(source):
    return reverse("admin:tasks_syncrun_changelist") + f"?source__id__exact={source.pk}"


def watched_sources():
    return list(Source.objects.filter(enabled=True).only("name", "created").order_by("name"))


# The rules


def sync_failing(params, now, rule):
    failed_passes = max(1, int(params["failed_passes"]))
    silent = timedelta(minutes=int(params["silent_minutes"]))
    found = []
    for source in watched_sources():
        runs = SyncRun.objects.filter(source=source).exclude(outcome__in=["skipped", "running"])
        last = list(runs.order_by("-started").values("outcome", "error")[:failed_passes])
        last_ok = runs.filter(outcome="ok").order_by("-started").values_list("ended", flat=True)
        last_ok = last_ok.first()
        failing = len(last) == failed_passes and all(r["outcome"] == "failed" for r in last)
        # A source younger than the silence it is allowed has not been silent yet.
        quiet_since = last_ok or source.created
        if failing:
            summary = (
                f"the last {failed_passes} sync passes of {source.name} failed: {last[0]['error']}"
            )
        elif quiet_since < now - silent:
            summary = (
                f"no successful sync pass of {source.name} for "
                f"{minutes_between(quiet_since, now)} minutes"
            )
            if last and last[0]["outcome"] == "failed":
                summary += f"; last error: {last[0]['error']}"
        else:
            continue
        found.append(Finding(source_key(source), summary, source, sync_runs_link(source)))
    return found


def failure_rate(params, now, rule):
    since = now - timedelta(minutes=int(params["minutes"]))
    # Every task finished since `since` was written since: task_last_changed_idx reads
    # them (ordered by it, so SQLite takes it over a GROUP BY's source index), counted here.
    recent = (
        Task.objects.filter(last_changed__gte=since)
        .order_by("last_changed")
        .values_list("source_id", "status", "finished")
    )
    finished, failed = {}, {}
    for source_id, status, finished_at in recent.iterator(chunk_size=2000):
        if status not in FINISHED_STATUSES or finished_at is None or finished_at < since:
            continue
        finished[source_id] = finished.get(source_id, 0) + 1
        if status == "FAILURE":
            failed[source_id] = failed.get(source_id, 0) + 1
    found = []
    for source in Source.objects.filter(pk__in=list(finished)).only("name"):
        total, bad = finished[source.pk], failed.get(source.pk, 0)
        if total >= int(params["min_tasks"]) and bad * 100 > float(params["percent"]) * total:
            summary = (
                f"{bad} of {total} tasks of {source.name} finished in the last "
                f"{params['minutes']} minutes failed ({bad * 100 // total} %)"
            )
            link = list_link(source=source.name, status="FAILURE")
            found.append(Finding(source_key(source), summary, source, link))
    return found


def stuck_tasks(params, now, rule):
    cutoff = now - timedelta(minutes=int(params["minutes"]))
    rows = (
        Task.objects.unfinished()
        .filter(last_changed__lt=cutoff)
        .order_by()
        .values_list("source_id", "status")
        .annotate(n=Count("pk"))
    )
    by_source = {}
    for source_id, status, n in rows:
        by_source.setdefault(source_id, {})[status] = n
    found = []
    for source in Source.objects.filter(pk__in=list(by_source)).only("name"):
        statuses = by_source[source.pk]
        total = sum(statuses.values())
        summary = (
            f"{total} tasks of {source.name} unfinished and unchanged for more than "
            f"{params['minutes']} minutes ("
            + ", ".join(f"{status or '—'}: {n}" for status, n in sorted(statuses.items()))
            + ")"
        )
        # Unchanged that long means submitted at least that long ago.
        link = list_link(
            source=source.name,
            status=sorted(statuses),
            submitted_before=timezone.localtime(cutoff).isoformat(timespec="seconds"),
        )
        found.append(Finding(source_key(source), summary, source, link))
    return found


def archive_lost(params, now, rule):
    """Links that expired before the archive copied them: the count the archive passes
    keep went up within the last `hours` (the rule remembers when it last rose)."""
    status = ArchiveStatus.objects.filter(pk=1).values_list("lost", flat=True).first()
    if status is None:
        return []
    memory = dict(rule.memory)
    seen = memory.get("lost")
    if seen is not None and status > seen:
        memory["rose"] = now.isoformat()
        memory["rise"] = status - seen
    if status != seen:
        memory["lost"] = status
        type(rule).objects.filter(pk=rule.pk).update(memory=memory)
    rose = memory.get("rose")
    if rose is None or now - datetime.fromisoformat(rose) > timedelta(hours=int(params["hours"])):
        return []
    summary = (
        f"{memory['rise']} image links expired before the archive could copy them "
        f"({status} lost in all); the archive pass may be stopped or too slow"
    )
    return [Finding("archive", summary, None, reverse("tasks:overview"))]


def archive_backlog(params, now, rule):
    # The backlog is read by task_image_pending_idx: usually a few rows.
    oldest = Task.objects.pending_images().aggregate(oldest=Min("last_changed"), n=Count("pk"))
    hours = int(params["hours"])
    if oldest["oldest"] is None or oldest["oldest"] >= now - timedelta(hours=hours):
        return []
    summary = (
        f"{oldest['n']} images wait to be archived, the oldest for "
        f"{minutes_between(oldest['oldest'], now) // 60} hours (more than {hours})"
    )
    return [Finding("archive", summary, None, reverse("tasks:overview"))]


def hook_silent(params, now, rule):
    """A source that has had hook calls, whose passes see changes the hook did not bring."""
    silent = timedelta(minutes=int(params["minutes"]))
    found = []
    for source in Source.objects.filter(
        enabled=True, last_hook_at__isnull=False, last_hook_at__lt=now - silent
    ).only("name", "last_hook_at"):
        changed = SyncRun.objects.filter(
            source=source, started__gt=source.last_hook_at + silent, outcome="ok"
        ).exclude(created=0, updated=0)
        if not changed.exists():
            continue
        summary = (
            f"no notify-hook call from {source.name} for "
            f"{minutes_between(source.last_hook_at, now)} minutes, while its sync passes "
            "still find changed tasks: check the proxy's notify-hook setting"
        )
        found.append(Finding(source_key(source), summary, source, sync_runs_link(source)))
    return found


# Accounts: only for sources whose accounts are synced (AccountSync.available); a source
# without an accounts endpoint never fires. A few rows per source, read whole.


def synced_accounts():
    return (
        Account.objects.current()
        .filter(source__enabled=True, source__account_sync__available=True)
        .select_related("source")
    )


def account_key(account):
    return f"account:{account.pk}"


def account_disabled(params, now, rule):
    found = []
    for account in synced_accounts().filter(enabled=False):
        summary = f"the Discord account {account} of {account.source.name} is disabled"
        if account.disabled_reason:
            summary += f": {account.disabled_reason}"
        found.append(
            Finding(account_key(account), summary, account.source, account.get_absolute_url())
        )
    return found


def no_enabled_account(params, now, rule):
    names = Account.objects.sources_without_enabled_account()
    return [
        Finding(
            source_key(source),
            f"{source.name} has no enabled Discord account left: no task can run there",
            source,
            reverse("accounts:list"),
        )
        for source in Source.objects.filter(name__in=names).only("name")
    ]


# "12.34/15.0 hours (82.27%)", as Discord's /info words it: the hours left come first.
FAST_HOURS = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)")


def fast_time_low(params, now, rule):
    below = float(params["hours"])
    found = []
    for account in synced_accounts().filter(enabled=True):
        parsed = FAST_HOURS.match(account.fast_time_remaining)
        hours = 0.0 if account.fast_exhausted else float(parsed.group(1)) if parsed else None
        if hours is None or hours >= below:
            continue  # a proxy that reports no fast time cannot fire this
        summary = (
            f"the Discord account {account} of {account.source.name} has "
            f"{hours:g} fast hours left (below {below:g})"
        )
        found.append(
            Finding(account_key(account), summary, account.source, account.get_absolute_url())
        )
    return found


def minutes_between(start, end):
    return int((end - start).total_seconds() // 60)


RULES = {
    rule.key: rule
    for rule in (
        Rule(
            "sync_failing",
            _("Sync failing"),
            {"failed_passes": 3, "silent_minutes": 10},
            sync_failing,
        ),
        Rule(
            "failure_rate",
            _("Many tasks failing"),
            {"minutes": 15, "percent": 30, "min_tasks": 10},
            failure_rate,
        ),
        Rule("stuck_tasks", _("Tasks stuck"), {"minutes": 30}, stuck_tasks),
        Rule("archive_lost", _("Image links lost"), {"hours": 24}, archive_lost),
        Rule("archive_backlog", _("Image archive behind"), {"hours": 6}, archive_backlog),
        Rule("hook_silent", _("Notify-hook silent"), {"minutes": 30}, hook_silent),
        Rule("account_disabled", _("Discord account disabled"), {}, account_disabled),
        Rule("no_enabled_account", _("No enabled Discord account"), {}, no_enabled_account),
        Rule("fast_time_low", _("Fast time running out"), {"hours": 1}, fast_time_low),
    )
}


def thresholds(rule_row):
    """The row's thresholds over the rule's defaults (a missing or broken one: its default)."""
    merged = dict(RULES[rule_row.key].params)
    for name, value in (rule_row.params or {}).items():
        if name in merged and isinstance(value, int | float) and value >= 0:
            merged[name] = value
    return merged
