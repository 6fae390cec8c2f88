"""/usage/: the usage table for people, and its CSV and XLSX exports (format=)."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.usage import chart, exports
from tasks.usage.report import DIMENSION_LABELS, DIMENSIONS, UsageForm, build, periods
from tasks.usage.table import table


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
    cells = table(report)
    ctx.update(
        report=report,
        table=cells,
        chart=chart.draw(report, _("other"), "—"),
        rows_label=DIMENSION_LABELS[report.rows],
        cols_label=DIMENSION_LABELS[report.cols],
        series_label=DIMENSION_LABELS[report.series],
        export_query={"csv": query(request, format="csv"), "xlsx": query(request, format="xlsx")},
        failed_url=cells["failed_url"],
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
