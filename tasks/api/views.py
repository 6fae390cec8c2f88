"""The mirror API: the proxy's four task endpoints, served from mjsite's own history.

Scripts written for a proxy point at mjsite instead and get the same JSON, including
tasks the proxy has forgotten. Bodies are stitched together from `Task.raw`, the JSON
text the proxy last sent, instead of being re-serialised: every key, value and the key
order stay exactly as received (the mirror is lossless). The one exception: a source's
secret and notify-hook token are masked (tasks.redaction), because proxies echo the
hook URL, which holds the token, in every record.

Auth is a logged-in session, or a token from `manage.py create_api_token` in the
`mj-api-secret` header or as `Authorization: Bearer <token>`.
"""

import functools
import json
import logging
import re
import sys
from datetime import UTC, datetime, timedelta

from django import forms
from django.core.exceptions import RequestDataTooBig
from django.db.models import F
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from tasks.api import tokens
from tasks.api.openapi import schema
from tasks.ingest.records import ID_PATTERN
from tasks.models import Source, Task
from tasks.redaction import Masker

log = logging.getLogger(__name__)

MAX_LIMIT = 1000  # items per /list page, and the default
MAX_IDS = 1000  # ids per list-by-condition request
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MOMENT = datetime.max.replace(tzinfo=UTC)


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


class BadRequest(Exception):
    def __init__(self, message, status=400, **extra):
        super().__init__(message)
        self.message, self.status, self.extra = message, status, extra


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


# Parameters


def source_named(name):
    """The pk of the source with this name; 404 when there is none."""
    pk = Source.objects.filter(name=name).values_list("pk", flat=True).first()
    if pk is None:
        raise BadRequest(f"no source named {name!r}", status=404)
    return pk


def source_param(request):
    name = request.GET.get("source", "")
    if not name:
        return None
    if "\x00" in name or len(name) > 50:
        raise BadRequest(f"no source named {name[:50]!r}", status=404)
    return source_named(name)


def parse_moment(text):
    """An ISO date or datetime as an aware datetime; a bare date means its midnight, and
    a time without an offset is in the site's TIME_ZONE."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise forms.ValidationError(
            "not an ISO date or datetime (like 2024-05-01 or 2024-05-01T08:30:00Z)"
        ) from None
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment.astimezone(UTC)  # the database compares in UTC
    except OverflowError:
        # Within a day of year 1 or 9999: as good as no bound at all.
        return datetime.min.replace(tzinfo=UTC) if moment.year < 5000 else MAX_MOMENT


class Cursor:
    """Where the next page of /list starts: after (submitted, pk), in the list's order.

    Written `<microseconds since the epoch>.<pk>`, or `null.<pk>` among the tasks
    without a submit time (they come last). Clients are to treat it as opaque.
    """

    PATTERN = re.compile(r"([0-9]{1,17}|null)\.([0-9]{1,18})")

    def __init__(self, submitted, pk):
        self.submitted, self.pk = submitted, pk

    def __str__(self):
        if self.submitted is None:
            return f"null.{self.pk}"
        return f"{(self.submitted - EPOCH) // timedelta(microseconds=1)}.{self.pk}"

    @classmethod
    def parse(cls, text):
        match = cls.PATTERN.fullmatch(text)
        if not match:
            raise forms.ValidationError(
                "not a cursor from this API; pass back the X-Next-Cursor of the previous page"
            )
        micros, pk = match.groups()
        submitted = None if micros == "null" else EPOCH + timedelta(microseconds=int(micros))
        return cls(submitted, int(pk))


class MultiValueField(forms.Field):
    """A repeatable parameter (?status=A&status=B); commas separate values too."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        values = []
        for item in value or []:
            values.extend(v.strip() for v in item.split(","))
        values = [v for v in values if v]
        if not values:
            return None  # not given, or only blanks: no filter
        # Stored statuses and actions are at most 64 characters and never hold NUL
        # (records.clean_text): other values match nothing, and PostgreSQL would refuse
        # a NUL as a parameter. Left out here; a filter left with none matches nothing.
        return [v for v in values if len(v) <= 64 and "\x00" not in v]


class ListForm(forms.Form):
    status = MultiValueField(required=False)
    action = MultiValueField(required=False)
    submitted_after = forms.CharField(required=False, max_length=64)
    submitted_before = forms.CharField(required=False, max_length=64)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)
    cursor = forms.CharField(required=False, max_length=64)

    def clean_submitted_after(self):
        value = self.cleaned_data["submitted_after"]
        return parse_moment(value) if value else None

    def clean_submitted_before(self):
        value = self.cleaned_data["submitted_before"]
        return parse_moment(value) if value else None

    def clean_cursor(self):
        value = self.cleaned_data["cursor"]
        return Cursor.parse(value) if value else None

    def error_text(self):
        return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in self.errors.items())


# The endpoints


@api_view("GET")
def task_list(request):
    form = ListForm(request.GET)
    if not form.is_valid():
        raise BadRequest(f"invalid query parameters: {form.error_text()}")
    params = form.cleaned_data
    limit = params["limit"] or MAX_LIMIT

    tasks = Task.objects.all()
    source = source_param(request)
    if source is not None:
        tasks = tasks.filter(source_id=source)
    for name in ("status", "action"):
        if params[name] is not None:
            tasks = tasks.filter(**{f"{name}__in": params[name]})
    if params["submitted_after"]:
        tasks = tasks.filter(submitted__gte=params["submitted_after"])
    if params["submitted_before"]:
        tasks = tasks.filter(submitted__lt=params["submitted_before"])

    rows, next_cursor = keyset_page(tasks, params["cursor"], limit)
    response = raw_array(raw for _, _, raw in rows)
    if next_cursor is not None:
        query = request.GET.copy()
        query["cursor"] = str(next_cursor)
        response["X-Next-Cursor"] = str(next_cursor)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        response["Link"] = f'<{next_url}>; rel="next"'
    return response


def keyset_page(tasks, cursor, limit):
    """One page of tasks newest first by (submitted, pk), those without a submit time last.

    Two index range scans on task_submitted_idx instead of one ORDER BY ... NULLS LAST,
    which PostgreSQL cannot serve from that index (its DESC puts NULLs first); the
    second runs only when the dated tasks run out within the page. No OFFSET: a deep
    page costs what the first costs, and tasks added meanwhile shift nothing.
    """
    columns = ("pk", "submitted", "raw")
    rows = []
    if cursor is None or cursor.submitted is not None:
        dated = tasks.filter(submitted__isnull=False)
        if cursor is not None:
            # submitted <= c bounds the index scan; the exclude breaks ties by pk.
            dated = dated.filter(submitted__lte=cursor.submitted).exclude(
                submitted=cursor.submitted, pk__gte=cursor.pk
            )
        rows = list(dated.order_by("-submitted", "-pk").values_list(*columns)[: limit + 1])
    if len(rows) <= limit:
        undated = tasks.filter(submitted__isnull=True)
        if cursor is not None and cursor.submitted is None:
            undated = undated.filter(pk__lt=cursor.pk)
        rows += list(undated.order_by("-pk").values_list(*columns)[: limit + 1 - len(rows)])
    if len(rows) > limit:
        pk, submitted, _ = rows[limit - 1]
        return rows[:limit], Cursor(submitted, pk)
    return rows, None


@api_view("GET")
def task_queue(request):
    tasks = Task.objects.filter(in_queue=True)
    source = source_param(request)
    if source is not None:
        tasks = tasks.filter(source_id=source)
    # Oldest first, like the proxy's queue; the queue is short, so the sort is cheap.
    tasks = tasks.order_by(F("submitted").asc(nulls_last=True), "pk")
    return raw_array(tasks.values_list("raw", flat=True))


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
    for task_id, raw, changed, pk in tasks.values_list("task_id", "raw", "last_changed", "pk"):
        current = best.get(task_id)
        if current is None or (changed, pk) > current[0]:
            best[task_id] = ((changed, pk), raw)
    return raw_array(best[i][1] for i in wanted if i in best)


def requested_ids(request):
    """The ids of a list-by-condition body, as strings; [] when `ids` is missing."""
    try:
        body = json.loads(request.body, parse_int=parse_int)
    except RequestDataTooBig:
        raise BadRequest("the body is too large; send at most 1000 ids", status=413) from None
    except NumberTooLong as exc:
        raise BadRequest(
            f"the body is not acceptable JSON: it holds a number {exc.digits:,} digits long, "
            f"and numbers of more than {MAX_DIGITS:,} digits are refused; task ids are far "
            f'shorter. Send {{"ids": [...]}}'
        ) from None
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadRequest(f'the body is not valid JSON ({reason}); send {{"ids": [...]}}') from None
    if not isinstance(body, dict):
        raise BadRequest(f'the body must be a JSON object like {{"ids": [...]}}, not {kind(body)}')
    ids = body.get("ids")
    if ids is None:
        return []  # the proxy answers a missing ids with [] too
    if not isinstance(ids, list):
        raise BadRequest(f"ids must be a list of task ids (strings or numbers), not {kind(ids)}")
    if len(ids) > MAX_IDS:
        raise BadRequest(
            f"too many ids: at most {MAX_IDS} ids per request, got {len(ids)}; split them up",
            max_ids=MAX_IDS,
        )
    out = []
    for n, value in enumerate(ids):
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            out.append(str(value))  # an id sent as a JSON number: its decimal text
        else:
            raise BadRequest(f"ids[{n}] is {kind(value)}, not a task id (a string or an integer)")
    return out


# Python refuses to convert longer digit strings (sys.get_int_max_str_digits, against
# quadratic-time attacks) with a message about its own settings; this module says it first.
MAX_DIGITS = min(4300, sys.get_int_max_str_digits() or 4300)


class NumberTooLong(ValueError):
    def __init__(self, digits):
        super().__init__(f"a number of {digits} digits")
        self.digits = digits


def parse_int(text):
    digits = len(text) - text.startswith("-")
    if digits > MAX_DIGITS:
        raise NumberTooLong(digits)
    return int(text)


def kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), "a value")


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
        raw = tasks.order_by("-last_changed", "-pk").values_list("raw", flat=True).first()
    if raw is None:
        return json_error(404, "task not found", id=task_id)
    return raw_object(raw)


@api_view("GET")
def openapi_json(request):
    return JsonResponse(schema(), json_dumps_params={"ensure_ascii": False})


def not_found(request, path=""):
    return json_error(404, f"no such endpoint: {request.path}")
