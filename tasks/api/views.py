"""The mirror API: the proxy's four task endpoints, served from mjsite's own history.

Scripts written for a proxy point at mjsite instead and get the same JSON, including
tasks the proxy has forgotten. Bodies are stitched together from `Task.raw`, the JSON
text the proxy last sent, instead of being re-serialised: every key, value and the key
order stay exactly as received (the mirror is lossless). The exceptions: a source's
secrets are masked (tasks.redaction), because proxies echo the hook URL, which holds the
token, in every record; and a new-api relay's task, whose `raw` is the relay's own row,
is served in the proxy's task shape made from that row (tasks.ingest.relay_rows), as the
relay's own /mj/task/ endpoints answer it.

Auth is a logged-in session, or a token from `manage.py create_api_token` in the
`mj-api-secret` header or as `Authorization: Bearer <token>`.
"""

import functools
import json
import logging

from django.db.models import F
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from tasks.api import tokens
from tasks.api.openapi import schema
from tasks.api.params import (
    MAX_LIMIT,
    BadRequest,
    PageForm,
    cursor_text,
    list_filters,
    refusal,
    requested_ids,
    source_param,
)
from tasks.ingest.records import ID_PATTERN, to_json_text
from tasks.ingest.relay_rows import task_shape
from tasks.models import SourceKind, Task
from tasks.redaction import Masker
from tasks.web import pager
from tasks.web.filters import TaskFilterSet

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


# Responses


def json_error(status, message, **extra):
    # Never put a token or a secret in here: the body goes back to whoever asked.
    return JsonResponse({"error": message, **extra}, status=status)


def raw_array(raws):
    """A JSON array of stored records, with the sources' secrets masked."""
    raws = list(raws)
    body = Masker().json_array(raws) if raws else "[]"  # no rows: no query for the secrets
    return HttpResponse(body, content_type="application/json")


def raw_object(raw):
    return HttpResponse(Masker().json_text(raw), content_type="application/json")


def served(raw, kind):
    """A stored task's JSON text as the API serves it: as received, or for a new-api
    relay's row, the task made from it."""
    if kind != SourceKind.NEWAPI:
        return raw
    return to_json_text(task_shape(json.loads(raw)))


# Auth


def token_from(request):
    """The API token a request carries, or None when it carries none."""
    value = request.headers.get("mj-api-secret", "").strip()
    if value:
        return value
    value = request.headers.get("Authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    if value and not rest:
        return value  # trueai's style: the bare token, no scheme
    # Another scheme (Basic from a reverse proxy in front of mjsite): not ours to judge.
    return None


class CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason  # the reason itself, so the API can answer in JSON


def csrf_failure(request):
    """Why a session-authenticated unsafe request fails Django's CSRF check, or None."""
    check = CsrfCheck(lambda request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def authenticate(request):
    """None when the request may proceed, else the 401/403 response."""
    token = token_from(request)
    if token is not None:
        user = tokens.user_for_token(token)
        if user is None:
            log.info("mirror API: refused an unknown, revoked or inactive token: %s", request.path)
            return unauthorized("invalid API token (unknown, revoked, or of an inactive user)")
        request.user = user
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # A browser session rides along on cross-site requests; a token header does not.
        if request.method not in SAFE_METHODS:
            reason = csrf_failure(request)
            if reason:
                return json_error(403, f"CSRF check failed: {reason}")
        return None
    return unauthorized(
        "authentication required: log in, or send a token from 'manage.py create_api_token' "
        "as 'mj-api-secret: <token>' or 'Authorization: Bearer <token>'"
    )


def unauthorized(message):
    response = json_error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="mjsite"'
    return response


def api_view(*methods):
    """JSON errors for wrong methods, bad input and missing auth; CSRF handled in authenticate."""
    allowed = list(methods) + (["HEAD"] if "GET" in methods else [])

    def decorator(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in allowed:
                response = json_error(
                    405, f"method {request.method} not allowed here; use {' or '.join(methods)}"
                )
                response["Allow"] = ", ".join(allowed)
                return response
            response = authenticate(request)
            if response is None:
                try:
                    response = view(request, *args, **kwargs)
                except BadRequest as exc:
                    response = json_error(exc.status, exc.message, **exc.extra)
            # One user's tasks: no shared cache may keep them.
            response["Cache-Control"] = "private, no-store"
            return response

        return wrapper

    return decorator


# The endpoints


@api_view("GET")
def task_list(request):
    # The pages' filters and pager; newest first by submit time, then by id.
    filters = TaskFilterSet(list_filters(request.GET), queryset=Task.objects.all(), request=request)
    paging = PageForm(request.GET)
    refused = filters.form.refused()
    refused.pop("source", None)  # a name no source can have: 404, as for an unknown one
    if refused or paging.errors:
        raise BadRequest(refusal(refused, paging.errors))
    source_param(request)  # 404 for an unknown source
    limit = paging.cleaned_data["limit"] or MAX_LIMIT
    after = paging.cleaned_data["cursor"]

    fields = ("raw", "source__kind")
    shown = pager.page(filters.qs, pager.DEFAULT_SORT, limit, after=after, fields=fields)
    response = raw_array(served(raw, kind) for _, _, raw, kind in shown.rows)
    if shown.next is not None:
        next_cursor = cursor_text(shown.next)
        query = request.GET.copy()
        query["cursor"] = next_cursor
        response["X-Next-Cursor"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        response["Link"] = f'<{next_url}>; rel="next"'
    return response


@api_view("GET")
def task_queue(request):
    tasks = Task.objects.filter(in_queue=True)
    source = source_param(request)
    if source is not None:
        tasks = tasks.filter(source_id=source)
    # Oldest first, like the proxy's queue; the queue is short, so the sort is cheap.
    tasks = tasks.order_by(F("submitted").asc(nulls_last=True), "pk")
    return raw_array(served(*row) for row in tasks.values_list("raw", "source__kind"))


@api_view("POST")
def task_list_by_condition(request):
    source = source_param(request)
    ids = requested_ids(request)
    if not ids:
        return raw_array([])
    # Only strings that look like proxy ids can be stored ids; the rest are unknown
    # and would only bloat the query (or upset PostgreSQL with NUL or surrogates).
    wanted = [i for i in dict.fromkeys(ids) if ID_PATTERN.match(i)]
    tasks = Task.objects.filter(task_id__in=wanted)
    if source is not None:
        tasks = tasks.filter(source_id=source)
    # An id in several sources: the version that changed last.
    best = {}
    rows = tasks.values_list("task_id", "raw", "source__kind", "last_changed", "pk")
    for task_id, raw, kind, changed, pk in rows:
        current = best.get(task_id)
        if current is None or (changed, pk) > current[0]:
            best[task_id] = ((changed, pk), raw, kind)
    return raw_array(served(*best[i][1:]) for i in wanted if i in best)


@api_view("GET")
def task_fetch(request, task_id):
    try:
        source = source_param(request)
    except BadRequest as exc:
        exc.extra["id"] = task_id  # which fetch failed, as for an unknown id
        raise
    raw = None
    if ID_PATTERN.match(task_id):
        tasks = Task.objects.filter(task_id=task_id)
        if source is not None:
            tasks = tasks.filter(source_id=source)
        # An id in several sources: the version that changed last (task_task_id_idx).
        raw = tasks.order_by("-last_changed", "-pk").values_list("raw", "source__kind").first()
    if raw is None:
        return json_error(404, "task not found", id=task_id)
    return raw_object(served(*raw))


@api_view("GET")
def openapi_json(request):
    return JsonResponse(schema(), json_dumps_params={"ensure_ascii": False})


def not_found(request, path=""):
    return json_error(404, f"no such endpoint: {request.path}")
