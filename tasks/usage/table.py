"""The usage table's cells as HTML, each number a link to the task list filtered to it.

A month of 200 callers × 9 actions is 1,800 cells and 9,000 links: written here in
Python, from query fragments encoded once per value, rather than with an {% include %}
and a reverse() per cell, which took ten times as long as building the report.
"""

from datetime import timedelta
from html import escape  # Django's, for all it adds, is a third of the table's time
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from tasks.templatetags.task_tags import duration_formats, seconds_text

# The task list's parameter for each grouping (tasks/web/filters.py); a day is a range.
LIST_PARAMS = {"caller": "caller", "account": "account", "source": "source",
               "action": "action", "mode": "mode"}  # fmt: skip
STATUS_PARAMS = {"succeeded": "SUCCESS", "failed": "FAILURE", "cancelled": "CANCEL"}


class Links:
    """URLs of the task list for a report's numbers, HTML-escaped (each piece once)."""

    def __init__(self, report):
        self.report = report
        self.base = escape(reverse("tasks:list") + "?")
        self.fragments = {}

    def fragment(self, dimension, value):
        """ "caller=bob&amp;" for a value; None where the list cannot filter on it (an
        empty caller, account, action or mode)."""
        key = (dimension, value)
        if key not in self.fragments:
            empty = value == "" or value is None
            query = urlencode([(LIST_PARAMS[dimension], value)])
            self.fragments[key] = None if empty else escape(query + "&")
        return self.fragments[key]

    def ends(self, values):
        """(head, tail) of the URLs of the numbers of `values` ({dimension: value}): one
        is head + "status=…&amp;" + tail, so that a cell's five links cost two joins.
        None where the list cannot filter on one of the values."""
        first, last = self.report.start, self.report.end
        head = self.base
        for dimension, value in values.items():
            if dimension == "day":
                first = last = value
                continue
            fragment = self.fragment(dimension, value)
            if fragment is None:
                return None
            head += fragment
        return head, self.period(first, last)

    def url(self, values, status=None):
        """The list filtered to `values` and a status (None: any), for a template."""
        head, tail = self.ends(values)
        return mark_safe(head + (f"status={status}&amp;" if status else "") + tail)  # noqa: S308

    def period(self, first, last):
        key = ("period", first, last)
        if key not in self.fragments:
            self.fragments[key] = escape(
                urlencode(
                    [
                        ("submitted_after", first.isoformat()),
                        ("submitted_before", (last + timedelta(days=1)).isoformat()),
                    ]
                )
            )
        return self.fragments[key]


class Cells:
    """<td>s of Figures: tasks; succeeded · failed · cancelled; run time; cost."""

    def __init__(self, report):
        self.links = Links(report)
        self.titles = [escape(_(figure)) for figure in STATUS_PARAMS]
        self.run_times = {}  # whole seconds -> text: many cells share one
        self.duration_formats = duration_formats()

    def td(self, figures, values, css="num"):
        if figures is None:
            return f'<td class="{css}"></td>'
        counts = (figures.succeeded, figures.failed, figures.cancelled)
        ends = self.links.ends(values)
        if ends is None:
            tasks, numbers = figures.tasks, counts
        else:
            head, tail = ends
            tasks = f'<a href="{head}{tail}">{figures.tasks}</a>'
            numbers = [
                f'<a href="{head}status={status}&amp;{tail}">{n}</a>' if n else 0
                for status, n in zip(STATUS_PARAMS.values(), counts, strict=True)
            ]
        (succeeded, failed, cancelled), (s, f, c) = self.titles, numbers
        return (
            f'<td class="{css}"><div class="cell-tasks">{tasks}</div>\n'
            f'<div class="cell-status muted"><span title="{succeeded}">{s}</span> · '
            f'<span title="{failed}">{f}</span> · <span title="{cancelled}">{c}</span></div>\n'
            f'<div class="cell-run muted">{self.run_time(figures.run_seconds)}</div>\n'
            f'<div class="cell-cost">{escape(figures.cost_text)}</div></td>'
        )

    def run_time(self, run_seconds):
        seconds = shown_seconds(round(run_seconds))
        if seconds not in self.run_times:
            text = seconds_text(seconds, self.duration_formats)
            self.run_times[seconds] = escape(text or "0 s")
        return self.run_times[seconds]

    def row(self, cells, total, values):
        """A row's cells then its total, as one piece of HTML."""
        return mark_safe(  # noqa: S308  (every value above is escaped)
            "".join(self.td(figures, v) for figures, v in cells)
            + self.td(total, values, "num total")
        )


def shown_seconds(seconds):
    """Whole seconds cut to what seconds_text() shows of them (minutes from an hour on, hours
    from two days on), so that cells showing the same text format it once: a year's
    table has thousands of different run times and a few hundred different texts."""
    if seconds < 3600:
        return seconds
    return seconds - seconds % (60 if seconds < 48 * 3600 else 3600)


def table(report):
    """The rows of the page's table: label and cells, then the totals' row."""
    cells = Cells(report)
    rows = []
    for r in report.row_values:
        line = [
            (report.cells.get((r, c)), {report.rows: r, report.cols: c}) for c in report.col_values
        ]
        rows.append({"value": r, "cells": cells.row(line, report.row_totals[r], {report.rows: r})})
    totals = [(report.col_totals[c], {report.cols: c}) for c in report.col_values]
    return {
        "rows": rows,
        "col_values": report.col_values,
        "totals": cells.row(totals, report.total, {}),
        "failed_url": cells.links.url({}, "FAILURE"),
    }
