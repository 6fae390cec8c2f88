"""Exports: the filtered list, any size, streamed as CSV or JSON lines."""

import csv
import json
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse

from tasks.models import Task
from tasks.redaction import Masker
from tasks.web.filters import TaskFilterSet
from tasks.web.pager import SORTS, duration_expression, order_by

EXPORT_CHUNK = 2000
EXPORT_FIELDS = [
    "source", "task_id", "action", "status", "progress", "prompt", "prompt_en",
    "description", "fail_reason", "submitted", "started", "finished", "image_url",
]  # fmt: skip


@login_required
def export_csv(request):
    rows = export_rows(request)
    masker = Masker()

    def lines():
        writer = csv.writer(Echo())
        yield "\ufeff" + writer.writerow(EXPORT_FIELDS)  # BOM: spreadsheets read UTF-8
        for task in rows:
            cells = export_values(task)
            yield writer.writerow([neutralise(masker.plain(value)) for value in cells])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tasks.csv"'
    return response


@login_required
def export_jsonl(request):
    rows = export_rows(request, raw=True)
    masker = Masker()

    def lines():
        for task in rows:
            # The record exactly as the proxy sent it (but for secrets), with its source.
            record = masker.json_text(task.raw)
            yield f'{{"source":{json.dumps(task.source.name)},"task":{record}}}\n'

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tasks.jsonl"'
    return response


class Echo:
    def write(self, value):
        return value


def export_rows(request, raw=False):
    """Every task the list's filters find, in the list's order (the whole of it: no
    SORT_WINDOW, no pages), those without a sort key last."""
    filters = TaskFilterSet(
        request.GET, queryset=Task.objects.select_related("source"), request=request
    )
    key, desc = SORTS[filters.form.values["sort"]]
    qs = filters.qs
    if key == "duration":
        qs = qs.annotate(duration=duration_expression())
    fields = ["source__name"] + [f for f in EXPORT_FIELDS if f != "source"]
    qs = qs.only(*fields, *(["raw"] if raw else []))
    order = [order_by(key, desc, nulls_last=True), order_by("id", desc)]
    qs = qs.order_by(*order)
    # The filters are tried here, before the response starts (one row, unordered): a
    # query that fails is an error page, not a file that breaks off after its first line
    # with a success status. The rows themselves come through a server-side cursor on
    # PostgreSQL, opened only when the body is read, so a client that never reads it
    # leaves no cursor behind.
    list(qs.order_by()[:1])
    return qs.iterator(chunk_size=EXPORT_CHUNK)


def export_values(task):
    out = [task.source.name]
    for name in EXPORT_FIELDS[1:]:
        value = getattr(task, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        out.append("" if value is None else value)
    return out


def neutralise(value):
    # A cell starting with = + - @ (or a tab or CR) is a formula to a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
