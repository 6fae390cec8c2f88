"""/usage/: the usage table for people, and its CSV and XLSX exports (format=)."""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.usage import chart, exports
from tasks.usage.report import DIMENSION_LABELS, DIMENSIONS, UsageForm, build, periods

# The task list's parameter for each grouping (tasks/web/filters.py); a day is a range.
LIST_PARAMS = {"caller": "caller", "account": "account", "source": "source",
               "action": "action", "mode": "mode"}  # fmt: skip
STATUS_PARAMS = {"succeeded": "SUCCESS", "failed": "FAILURE", "cancelled": "CANCEL"}


@login_required
def usage(request):
    form = UsageForm(request.GET)
    if not form.is_valid():
        if request.GET.get("format") in ("csv", "xlsx"):
            return HttpResponse(
                "\n".join(form_errors(form)) + "\n", status=400, content_type="text/plain"
            )
        return render(request, "usage/usage.html", page_context(request, form), status=400)
    data = form.cleaned_data
    report = build(data["start"], data["end"], data["rows"], data["cols"])
    if data["format"] == "csv":
        return exports.csv_response(report)
    if data["format"] == "xlsx":
        return exports.xlsx_response(report)
    ctx = page_context(request, form)
    ctx.update(
        report=report,
        table=table(report),
        chart=chart.draw(report, _("other"), "—"),
        rows_label=DIMENSION_LABELS[report.rows],
        cols_label=DIMENSION_LABELS[report.cols],
        series_label=DIMENSION_LABELS[report.series],
        export_query={"csv": query(request, format="csv"), "xlsx": query(request, format="xlsx")},
        failed_url=list_url(report, {}, "FAILURE"),
    )
    return render(request, "usage/usage.html", ctx)


def page_context(request, form):
    today = timezone.localdate()
    data = getattr(form, "cleaned_data", {}) if form.is_bound and not form.errors else {}
    return {
        "page": "usage",
        "form": form,
        "errors": form_errors(form),
        "dimensions": [(d, DIMENSION_LABELS[d]) for d in DIMENSIONS],
        "values": {
            "start": data.get("start") or request.GET.get("start", ""),
            "end": data.get("end") or request.GET.get("end", ""),
            "rows": data.get("rows") or request.GET.get("rows", ""),
            "cols": data.get("cols") or request.GET.get("cols", ""),
        },
        "periods": [
            (
                label,
                query(request, start=start.isoformat(), end=end.isoformat()),
                data.get("start") == start and data.get("end") == end,
            )
            for _key, label, start, end in periods(today)
        ],  # fmt: skip
    }


def form_errors(form):
    """Every refused parameter as a sentence: "start: Enter a valid date." """
    out = []
    for name, errors in form.errors.items():
        for message in errors:
            out.append(message if name == "__all__" else f"{name}: {message}")
    return out


def query(request, **changes):
    """This request's "?query" with some parameters changed (format dropped)."""
    params = {k: v for k, v in request.GET.items() if k in ("start", "end", "rows", "cols")}
    params.update(changes)
    return "?" + urlencode(params)


def table(report):
    """The rows of the page's table: label, cells, total, each cell with its links."""
    rows = []
    for r in report.row_values:
        cells = [cell(report, report.cells.get((r, c)), {report.rows: r, report.cols: c})
                 for c in report.col_values]  # fmt: skip
        total = cell(report, report.row_totals[r], {report.rows: r})
        rows.append({"value": r, "cells": cells, "total": total})
    totals = [cell(report, report.col_totals[c], {report.cols: c}) for c in report.col_values]
    return {
        "rows": rows,
        "col_values": report.col_values,
        "totals": totals,
        "total": cell(report, report.total, {}),
    }


def cell(report, figures, values):
    if figures is None:
        return None
    links = {"tasks": list_url(report, values)}
    for figure, status in STATUS_PARAMS.items():
        if getattr(figures, figure):
            links[figure] = list_url(report, values, status)
    return {"figures": figures, "links": links}


def list_url(report, values, status=None):
    """The task list filtered to what a number counts; None where the list cannot
    filter on a value (an empty caller, account, action or mode)."""
    first, last = report.start, report.end
    params = []
    for dimension, value in values.items():
        if dimension == "day":
            first = last = value
        elif value == "" or value is None:
            return None
        else:
            params.append((LIST_PARAMS[dimension], value))
    if status:
        params.append(("status", status))
    params += [
        ("submitted_after", first.isoformat()),
        ("submitted_before", (last + timedelta(days=1)).isoformat()),
    ]
    return reverse("tasks:list") + "?" + urlencode(params)
