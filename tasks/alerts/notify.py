"""Deliveries: one row per notification and channel, sent once, retried with backoff.

Every attempt is claimed first with a conditional UPDATE (due, not sent, next_try as read),
so several workers never send the same delivery twice; a worker that dies mid-attempt
leaves the delivery due again after CLAIM.
"""

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from tasks.alerts.channels import DeliveryError, send
from tasks.alerts.messages import compose
from tasks.models import Channel, Delivery
from tasks.redaction import Masker

log = logging.getLogger(__name__)

BACKOFF_MINUTES = (1, 2, 5, 15, 30, 60, 120, 240)  # then it gives up
CLAIM = timedelta(minutes=5)  # an attempt's hold on its delivery
DUE = Q(state__in=[Delivery.State.PENDING, Delivery.State.FAILED])
PER_EVALUATION = 50  # attempts one evaluation makes at most: the rest wait for the next


def channels_for(incident):
    """The enabled channels that take this incident's rule and source."""
    channels = Channel.objects.filter(enabled=True)
    channels = channels.filter(Q(rules=None) | Q(rules=incident.rule_id))
    if incident.source_id:
        channels = channels.filter(Q(sources=None) | Q(sources=incident.source_id))
    return list(channels.distinct())


def queue(incident, kind, now):
    """A delivery to every channel that takes the incident, due now."""
    return Delivery.objects.bulk_create(
        Delivery(incident=incident, channel=channel, kind=kind, created=now, next_try=now)
        for channel in channels_for(incident)
    )


def deliver_due(now=None):
    """Attempts every due delivery (first attempts and retries); returns how many went out."""
    now = now or timezone.now()
    due = (
        Delivery.objects.filter(DUE, next_try__lte=now)
        .select_related("incident__rule", "incident__source", "channel")
        .order_by("next_try")[:PER_EVALUATION]
    )
    masker = Masker()
    return sum(attempt(delivery, now, masker) for delivery in due)


def attempt(delivery, now, masker):
    claimed = Delivery.objects.filter(
        DUE, pk=delivery.pk, next_try=delivery.next_try, attempts=delivery.attempts
    ).update(next_try=now + CLAIM, attempts=F("attempts") + 1)
    if not claimed:
        return False  # another worker has it
    attempts = delivery.attempts + 1
    title, body = compose(delivery.incident, delivery.kind, masker)
    try:
        send(delivery.channel, title, body)
    except DeliveryError as error:
        gave_up = attempts > len(BACKOFF_MINUTES)
        Delivery.objects.filter(pk=delivery.pk).update(
            state=Delivery.State.GAVE_UP if gave_up else Delivery.State.FAILED,
            next_try=None if gave_up else now + timedelta(minutes=BACKOFF_MINUTES[attempts - 1]),
            error=masker.plain(error.reason),
        )
        log.warning(
            "alert %s to channel %s failed (attempt %d%s): %s",
            delivery.kind,
            delivery.channel.name,
            attempts,
            ", gave up" if gave_up else "",
            masker.plain(error.reason),
        )
        return False
    Delivery.objects.filter(pk=delivery.pk).update(
        state=Delivery.State.SENT, sent=timezone.now(), next_try=None, error=""
    )
    log.info("alert %s sent to channel %s", delivery.kind, delivery.channel.name)
    return True


def send_test(channel):
    """A test message to one channel, now; raises DeliveryError."""
    send(
        channel,
        "[mjsite] test notification",
        f"This is a test of the alert channel {channel.name}: it works.",
    )
