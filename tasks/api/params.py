"""What the mirror API reads from a request: its limits, its dialect of the task list's
parameters, its cursors, the `source` every endpoint takes, list-by-condition's body.

The filters themselves are the pages' (tasks.web.filters.TaskFilterSet) and so is the
paging (tasks.web.pager); this module only translates the API's spelling of them.
"""

import json
import re
import sys
from datetime import UTC, datetime, timedelta

from django import forms
from django.core.exceptions import RequestDataTooBig
from django.http import QueryDict

from tasks.models import Source
from tasks.web.pager import Position

MAX_LIMIT = 1000  # items per /list page, and the default
MAX_IDS = 1000  # ids per list-by-condition request
# Python refuses to convert longer digit strings (sys.get_int_max_str_digits, against
# quadratic-time attacks) with a message about its own settings; this module says it first.
MAX_DIGITS = min(4300, sys.get_int_max_str_digits() or 4300)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadRequest(Exception):
    def __init__(self, message, status=400, **extra):
        super().__init__(message)
        self.message, self.status, self.extra = message, status, extra


# /mj/task/list


# The list's filters the API takes (tasks/api/openapi.py describes them); the pages'
# others (q, range, sort, before) are not part of it, and are ignored as unknown.
LIST_FILTERS = (
    "status", "action", "submitted_after", "submitted_before", "source", "favourite", "tag",
)  # fmt: skip
COMMA_LISTS = ("status", "action", "tag")  # repeatable, and commas separate values too
# Midjourney's parameters and who asked (tasks/web/filters.py); a caller's own tag may
# hold a comma, so only repeating gives several callers.
LIST_FILTERS += ("mode", "version", "ar", "bot", "account", "caller")
COMMA_LISTS += ("mode", "version", "ar", "bot", "account")


def list_filters(query):
    """The API's list parameters, as TaskFilterSet reads the pages'."""
    data = QueryDict(mutable=True)
    for name in LIST_FILTERS:
        values = query.getlist(name)
        if name in COMMA_LISTS:
            values = [value for item in values for value in item.split(",")]
        if values:
            data.setlist(name, values)
    return data


class CursorField(forms.Field):
    """Where a page of /list starts, as the API writes it: `<microseconds since the epoch
    of the submit time>.<pk>`, or `null.<pk>` among the tasks without a submit time (they
    come last). Clients are to treat it as opaque."""

    PATTERN = re.compile(r"([0-9]{1,17}|null)\.([0-9]{1,18})")

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        match = self.PATTERN.fullmatch(value)
        if not match:
            raise forms.ValidationError(
                "not a cursor from this API; pass back the X-Next-Cursor of the previous page"
            )
        micros, pk = match.groups()
        submitted = None if micros == "null" else EPOCH + timedelta(microseconds=int(micros))
        return Position(submitted, int(pk))


def cursor_text(position):
    if position.key is None:
        return f"null.{position.pk}"
    return f"{(position.key - EPOCH) // timedelta(microseconds=1)}.{position.pk}"


class PageForm(forms.Form):
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT)
    cursor = CursorField(required=False)


def refusal(*errors):
    """One message for every refused parameter of these {name: [messages]}."""
    reasons = [
        f"{name}: {' '.join(messages)}" for found in errors for name, messages in found.items()
    ]
    return f"invalid query parameters: {'; '.join(reasons)}"


# Every endpoint


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


# /mj/task/list-by-condition


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
