"""The proxy's notify-hook: POST /hooks/mj/<token>/ with one task's JSON.

The proxy sends no credentials, so the unguessable token in the URL is the
credential; it is never logged in full (see mjsite.logging_filters). A pushed
record goes through exactly the sync's code path (`sync.ingest`), so a late or
duplicated callback cannot undo a newer state.
"""

import logging

from django.db import transaction
from django.db.models import F
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import sync
from .json_items import DECODER, Item
from .models import Source

log = logging.getLogger(__name__)

MAX_HOOK_BODY = 5 * 1024 * 1024


@csrf_exempt
@require_POST
def receive(request, token):
    source = Source.objects.filter(hook_token=token).first()
    if source is None:
        raise Http404("no such hook")
    now = timezone.now()
    body = request.body[: MAX_HOOK_BODY + 1]
    error = None
    if len(body) > MAX_HOOK_BODY:
        error = f"body larger than {MAX_HOOK_BODY // (1024 * 1024)} MB"
    else:
        try:
            text = body.decode("utf-8").strip()
            record = Item(text, DECODER.decode(text))
        except UnicodeDecodeError:
            error = "body is not UTF-8"
        except ValueError as exc:
            error = f"body is not JSON: {exc}"
    # One transaction, one commit per callback: the record and the source's counters.
    with transaction.atomic():
        if error is None:
            counts, ids = sync.ingest(source, [record], via="hook")
            if counts.invalid:
                error = source.invalid_records.latest("received").reason
        counter = "hooks_invalid" if error else "hooks_received"
        Source.objects.filter(pk=source.pk).update(**{counter: F(counter) + 1}, last_hook_at=now)
    if error is not None:
        log.warning("%s: refused a hook callback: %s", source.name, error)
        return JsonResponse({"error": error}, status=400)
    outcome = "created" if counts.created else "updated" if counts.updated else "ignored"
    return JsonResponse({"ok": True, "id": ids[0], "outcome": outcome})
