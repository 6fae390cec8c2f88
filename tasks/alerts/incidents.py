"""One evaluation: every rule's findings turned into incidents opened, kept or resolved,
and their notifications queued and attempted.

Several workers may evaluate at the same minute. Each change of an incident is claimed
so that exactly one of them notifies: an incident is opened by an INSERT that the unique
constraint incident_open_uniq lets through once, resolved by a conditional UPDATE
(`resolved IS NULL`), and repeated by a conditional UPDATE of last_notified.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from tasks.alerts import notify
from tasks.alerts.rules import RULES, thresholds
from tasks.models import AlertRule, Incident
from tasks.redaction import Masker

log = logging.getLogger(__name__)


@dataclass
class Change:
    what: str  # "opened", "open" (still) or "resolved"
    incident: Incident

    def line(self):
        where = self.incident.source.name if self.incident.source_id else "archive"
        return f"{self.what}: {self.incident.rule.key} on {where}: {self.incident.summary}"


def rule_rows():
    """Every rule's row, a missing one (a rule added since the migration) created on."""
    rows = {row.key: row for row in AlertRule.objects.all()}
    for key, rule in RULES.items():
        if key not in rows:
            rows[key], _ = AlertRule.objects.get_or_create(
                key=key, defaults={"params": rule.params}
            )
    return [rows[key] for key in RULES]


def evaluate(now=None):
    """One evaluation of every rule; returns the incidents opened, still open and resolved."""
    now = now or timezone.now()
    changes = []
    for row in rule_rows():
        try:
            findings = RULES[row.key].check(thresholds(row), now, row) if row.enabled else []
        except Exception:
            # One broken rule must not silence the others; its incidents stay as they are.
            log.exception("alert rule %s failed", row.key)
            continue
        changes += reconcile(row, {f.key: f for f in findings}, now)
    notify.deliver_due(now)
    return changes


def reconcile(row, findings, now):
    changes = []
    open_ones = open_incidents_of(row)
    for key, finding in findings.items():
        incident = open_ones.get(key)
        if incident is None:
            incident = open_incident(row, finding, now)
            if incident is not None:
                changes.append(Change("opened", incident))
            continue
        if incident.summary != finding.summary or incident.link != finding.link:
            Incident.objects.filter(pk=incident.pk).update(
                summary=finding.summary, link=finding.link
            )
            incident.summary, incident.link = finding.summary, finding.link
        repeat_if_due(row, incident, now)
        changes.append(Change("open", incident))
    for key, incident in open_ones.items():
        if key in findings:
            continue
        if Incident.objects.filter(pk=incident.pk, resolved__isnull=True).update(resolved=now):
            incident.resolved = now
            notify.queue(incident, "resolved", now)
            changes.append(Change("resolved", incident))
    return changes


def open_incidents_of(row):
    """The rule's open incidents by key, as this evaluation starts from them."""
    incidents = Incident.objects.filter(rule=row, resolved__isnull=True)
    return {i.key: i for i in incidents.select_related("rule", "source")}


def open_incident(row, finding, now):
    """The new incident, or None when another worker opened it first."""
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                rule=row,
                source=finding.source,
                key=finding.key,
                opened=now,
                last_notified=now,
                summary=finding.summary,
                link=finding.link,
            )
            notify.queue(incident, "opened", now)
    except IntegrityError:
        return None
    return incident


def repeat_if_due(row, incident, now):
    if not row.repeat_hours or incident.last_notified > now - timedelta(hours=row.repeat_hours):
        return
    claimed = Incident.objects.filter(
        pk=incident.pk, resolved__isnull=True, last_notified=incident.last_notified
    ).update(last_notified=now)
    if claimed:
        notify.queue(incident, "repeat", now)


def scheduled_evaluation():
    """The schedule's entry (tasks/bootstrap.py): the evaluation, as counts."""
    changes = evaluate()
    return {what: sum(c.what == what for c in changes) for what in ("opened", "open", "resolved")}


def open_incidents():
    """The open incidents, newest first (the overview shows them too)."""
    return with_titles(
        Incident.objects.filter(resolved__isnull=True)
        .select_related("rule", "source")
        .order_by("-opened")
    )


def with_titles(incidents, masker=None):
    masker = masker or Masker()
    incidents = list(incidents)
    for incident in incidents:
        rule = RULES.get(incident.rule.key)
        incident.title = rule.title if rule else incident.rule.key
        incident.summary = masker.plain(incident.summary)
    return incidents
