"""The proxy's notify-hook: POST /hooks/mj/<token>/ with one task's JSON.

The proxy sends no credentials, so the unguessable token in the URL is the
credential; it is never logged in full (see mjsite.logging_filters). A pushed
record goes through exactly the sync's code path (`sync.ingest`), so a late or
duplicated callback cannot undo a newer state.

Every refusal is a JSON 400 with the reason, counted in the source's
hooks_invalid: a body over MAX_HOOK_BODY, one that is not UTF-8 or not JSON, and a
record the sync refuses (kept in Invalid records, as a pass keeps one from a list).
"""

import logging

from django.db import transaction
from django.db.models import F
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tasks.ingest import records, sync
from tasks.ingest.json_items import WHITESPACE, decode_item
from tasks.models import Source

log = logging.getLogger(__name__)

# The one limit on a callback's body. Read from the request's stream, not request.body,
# which refuses anything over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with an HTML
# page of its own; a body declared larger is not read at all.
MAX_HOOK_BODY = 5 * 1024 * 1024


@csrf_exempt
@require_POST
def receive(request, token):
    source = Source.objects.filter(hook_token=token).first()
    if source is None:
        raise Http404("no such hook")
    now = timezone.now()
    record, error = read_record(request)
    # One transaction, one commit per callback: the record and the source's counters.
    with transaction.atomic():
        if error is None:
            counts, ids = sync.ingest(source, [record], via="hook")
            if counts.invalid:
                error = why_invalid(record)
        counter = "hooks_invalid" if error else "hooks_received"
        Source.objects.filter(pk=source.pk).update(**{counter: F(counter) + 1}, last_hook_at=now)
    if error is not None:
        log.warning("%s: refused a hook callback: %s", source.name, error)
        return JsonResponse({"error": error}, status=400)
    outcome = "created" if counts.created else "updated" if counts.updated else "ignored"
    return JsonResponse({"ok": True, "id": ids[0], "outcome": outcome})


def read_record(request):
    """(the body as a json_items.Item, None), or (None, why it cannot be one)."""
    too_large = f"body larger than {MAX_HOOK_BODY // (1024 * 1024)} MB"
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_HOOK_BODY:
        return None, too_large
    body = request.read(MAX_HOOK_BODY + 1)
    if len(body) > MAX_HOOK_BODY:
        return None, too_large
    try:
        text = body.decode("utf-8").strip(WHITESPACE)
    except UnicodeDecodeError:
        return None, "body is not UTF-8"
    try:
        # As a list's items are read: a record nested too deep, or holding a NaN, is
        # read for its id and kept as an invalid record, as a pass keeps it.
        return decode_item(text), None
    except ValueError as exc:
        return None, f"body is not JSON: {exc}"


def why_invalid(record):
    """Why sync.ingest counted this record invalid: what it found, found again (the
    Invalid records table may hold a concurrent callback's reason by now)."""
    if record.problem:
        return record.problem
    try:
        records.normalise(record.value, records.identify(record.value, record.text))
    except records.InvalidRecord as exc:
        return exc.reason
    return "invalid record"
