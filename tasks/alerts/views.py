"""/alerts/: the open incidents and the recent ones, with their deliveries."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.shortcuts import render
from django.utils import timezone

from tasks.alerts.incidents import with_titles
from tasks.models import Delivery, Incident
from tasks.redaction import Masker

RECENT_DAYS = 7
RECENT_MAX = 100


@login_required
def alert_list(request):
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    deliveries = Prefetch(
        "deliveries",
        queryset=Delivery.objects.select_related("channel").order_by("created", "pk"),
    )
    masker = Masker()
    incidents = with_titles(
        Incident.objects.filter(opened__gte=since)
        .select_related("rule", "source")
        .prefetch_related(deliveries)
        .order_by("-opened")[:RECENT_MAX],
        masker,
    )
    older_open = with_titles(
        Incident.objects.filter(opened__lt=since, resolved__isnull=True)
        .select_related("rule", "source")
        .prefetch_related(deliveries)
        .order_by("-opened"),
        masker,
    )
    everything = older_open + incidents
    for incident in everything:
        for delivery in incident.deliveries.all():
            delivery.error = masker.plain(delivery.error)
    ctx = {
        "page": "alerts",
        "open": [i for i in everything if i.resolved is None],
        "resolved": [i for i in everything if i.resolved is not None],
        "recent_days": RECENT_DAYS,
    }
    return render(request, "tasks/alerts.html", ctx)
