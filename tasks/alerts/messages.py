"""The words of a notification: what, where, since when, how bad, and a link."""

from django.conf import settings
from django.utils import timezone, translation

from tasks.alerts.rules import RULES
from tasks.redaction import Masker


def link(path):
    """MJ_PUBLIC_URL before the path; without it, the path alone."""
    return f"{settings.MJ_PUBLIC_URL}{path}" if path else ""


def where(incident):
    return f"source {incident.source.name}" if incident.source_id else "the image archive"


def duration(delta):
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days {hours % 24} h"


def stamp(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def compose(incident, kind, masker=None):
    """(title, body) of a notification of kind opened, repeat or resolved."""
    masker = masker or Masker()
    rule = RULES.get(incident.rule.key)
    with translation.override("en"):  # notifications are in English
        title = str(rule.title) if rule else incident.rule.key
    head = {"opened": "", "repeat": "still open: ", "resolved": "resolved: "}[kind]
    subject = f"[mjsite] {head}{title} on {where(incident)}"
    lines = [masker.plain(incident.summary)]
    if kind == "resolved":
        lines.append(
            f"Resolved at {stamp(incident.resolved)} after "
            f"{duration(incident.resolved - incident.opened)} (since {stamp(incident.opened)})."
        )
    else:
        lines.append(
            f"Since {stamp(incident.opened)} ({duration(timezone.now() - incident.opened)})."
        )
    if incident.link:
        lines.append(f"Details: {link(incident.link)}")
    lines.append(f"All alerts: {link(incident.get_absolute_url().split('#')[0])}")
    return subject, "\n".join(lines)
