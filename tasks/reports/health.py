"""Endpoints for operations: /healthz for load balancers, /metrics for Prometheus.

/healthz needs no login, so it says only what a load balancer needs: whether the
database answers, and per enabled source how long ago it last synced (names only:
no URL, no secret). /metrics needs `Authorization: Bearer <MJ_METRICS_TOKEN>`, and
does not exist (404) while no token is set.
"""

import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from tasks.reports import metrics
from tasks.reports.overview import sources_with_health

log = logging.getLogger(__name__)

# The overview's sync-health warnings (tasks/reports/overview.py), in the words /healthz uses.
STATUS = {"": "ok", "silent": "stale", "failing": "failing"}


@never_cache
@require_safe
def healthz(request):
    now = timezone.now()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        sources = [s for s in sources_with_health(now) if s.enabled]
    except DatabaseError as exc:
        log.error("healthz: the database is unreachable: %s", exc)
        return JsonResponse({"database": "unreachable"}, status=503)
    body = {
        "database": "ok",
        "sources": {
            s.name: {
                "last_ok_sync_age_s": (
                    round((now - s.last_ok).total_seconds(), 1) if s.last_ok else None
                ),
                "status": STATUS.get(s.warning, s.warning),
            }
            for s in sources
        },
    }
    return JsonResponse(body)


@never_cache
@require_safe
def metrics_view(request):
    token = settings.MJ_METRICS_TOKEN
    if not token:
        raise Http404("metrics are off: set MJ_METRICS_TOKEN")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        response = HttpResponse("a bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="mjsite metrics"'
        return response
    # generate_latest writes text format 0.0.4, and prometheus_client's own handlers label it
    # CONTENT_TYPE_PLAIN_0_0_4 (its CONTENT_TYPE_LATEST now says version=1.0.0).
    return HttpResponse(generate_latest(metrics.registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
