"""The usage table: the period and grouping asked for, cells of figures, totals, the
chart over time and the failed tasks that were charged, from the roll-up's rows."""

import calendar
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks.models import Source, Task
from tasks.redaction import Masker
from tasks.usage import cells, prices, rollup

DIMENSIONS = ("caller", "account", "source", "action", "mode", "day")
DIMENSION_LABELS = {
    "caller": _("Caller"),
    "account": _("Account"),
    "source": _("Source"),
    "action": _("Action"),
    "mode": _("Mode"),
    "day": _("Day"),
}
MAX_DAYS = 3660  # ten years: a longer period is refused
CHARGED_SHOWN = 50  # failed tasks the proxy charged, listed by name
REFRESH_EVERY = timedelta(seconds=60)  # how often a page looks for changed tasks


class UsageForm(forms.Form):
    """/usage/'s parameters (CONTRACT.md): an invalid one is a 400 that names it."""

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    rows = forms.ChoiceField(required=False, choices=[(d, d) for d in DIMENSIONS])
    cols = forms.ChoiceField(required=False, choices=[(d, d) for d in DIMENSIONS])
    format = forms.ChoiceField(required=False, choices=[("csv", "csv"), ("xlsx", "xlsx")])

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        this_month = month_of(timezone.localdate())
        data["start"] = data.get("start") or this_month[0]
        data["end"] = data.get("end") or this_month[1]
        data["rows"] = data.get("rows") or "caller"
        data["cols"] = data.get("cols") or ("action" if data["rows"] != "action" else "mode")
        if data["start"] > data["end"]:
            raise forms.ValidationError(_("The start is after the end."))
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise forms.ValidationError(_("Choose a period of at most ten years."))
        if data["rows"] == data["cols"]:
            raise forms.ValidationError(_("Rows and columns need two different groupings."))
        return data


def month_of(day):
    first = day.replace(day=1)
    return first, day.replace(day=calendar.monthrange(day.year, day.month)[1])


def periods(today):
    """The period presets: (key, label, start, end)."""
    month = month_of(today)
    last_month = month_of(month[0] - timedelta(days=1))
    monday = today - timedelta(days=today.weekday())
    return [
        ("day", _("Today"), today, today),
        ("week", _("This week"), monday, monday + timedelta(days=6)),
        ("month", _("This month"), *month),
        ("last_month", _("Last month"), *last_month),
    ]


@dataclass(slots=True)
class Figures:
    tasks: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    run_seconds: float = 0.0
    charged_failed: int = 0  # failed or cancelled, yet charged
    cost: Counter = field(default_factory=Counter)  # currency -> COST_UNITs (an int)

    def add(self, tasks, succeeded, failed, cancelled, run_seconds, charged_failed, cost):
        """Add a line's figures; `cost` is (currency, COST_UNITs), or None where the line
        charges nothing."""
        self.tasks += tasks
        self.succeeded += succeeded
        self.failed += failed
        self.cancelled += cancelled
        self.run_seconds += run_seconds
        self.charged_failed += charged_failed
        if cost:
            self.cost[cost[0]] += cost[1]

    @property
    def run_time(self):
        return timedelta(seconds=round(self.run_seconds))

    @property
    def cost_text(self):
        """The cost as the page and the exports write it: a number in the one currency
        in use, else each currency's amount ("1.20 USD; 3.00 CNY")."""
        if not self.cost:
            return "0.00"
        if len(self.cost) == 1:
            return prices.money(next(iter(self.cost.values())))
        return "; ".join(f"{prices.money(v)} {c}" for c, v in sorted(self.cost.items()))


@dataclass
class Report:
    start: object
    end: object
    rows: str
    cols: str
    row_values: list
    col_values: list
    cells: dict  # (row value, col value) -> Figures
    row_totals: dict
    col_totals: dict
    total: Figures
    by_day: dict  # (day, series value) -> tasks; the series is the dimension that is not day
    series: str
    currencies: list
    charged_tasks: list = field(default_factory=list)  # failed, charged by the proxy


def build(start, end, rows, cols):
    """The report of the tasks submitted on the local days start..end: the cells of
    the rolled days plus the tasks counted live."""
    rollup.refresh(at_most_every=REFRESH_EVERY)
    live = rollup.live(start, end)
    shown = Shown()
    table = defaultdict(Figures)
    row_totals, col_totals, total = defaultdict(Figures), defaultdict(Figures), Figures()
    quota_charged = 0
    lines = [*cells.summed(start, end, (rows, cols)), *cells.fold(live, (rows, cols))]
    for r, c, currency, *sums in lines:
        n, succeeded, failed, cancelled, run, quota, charged, charged_failed, units = sums
        r, c = shown[rows, r], shown[cols, c]
        # A currency counts where a task is charged in it, even at a price of 0.
        cost = (currency, units) if currency and charged else None
        for figures in (table[r, c], row_totals[r], col_totals[c], total):
            figures.add(n, succeeded, failed, cancelled, run, charged_failed, cost)
        quota_charged += quota
    series = rows if rows != "day" else cols
    if rows == "day":
        days = lines
    elif cols == "day":
        days = [(day, value, *others) for value, day, *others in lines]
    else:
        days = [*cells.summed(start, end, ("day", series)), *cells.fold(live, ("day", series))]
    by_day = Counter()
    for day, value, _currency, n, *_others in days:
        by_day[day, shown[series, value]] += n
    report = Report(
        start=start,
        end=end,
        rows=rows,
        cols=cols,
        row_values=ordered(rows, row_totals),
        col_values=ordered(cols, col_totals),
        cells=dict(table),
        row_totals=dict(row_totals),
        col_totals=dict(col_totals),
        total=total,
        by_day=by_day,
        series=series,
        currencies=sorted(total.cost),
    )
    if quota_charged:
        report.charged_tasks = charged_by_proxy(start, end)
    return report


class Shown(dict):
    """Values as the report shows them, shown[dimension, value]: a source by name,
    callers and accounts with a source's secret, were it ever sent as a caller (the
    `state` a bot fills), masked as everywhere."""

    def __init__(self):
        super().__init__()
        self.masker = Masker()
        self.names = dict(Source.objects.values_list("pk", "name"))

    def __missing__(self, key):
        dimension, value = key
        if dimension == "source":
            self[key] = self.names.get(value, "")
        elif dimension in ("caller", "account"):
            self[key] = self.masker.plain(value)
        else:
            self[key] = value
        return self[key]


def ordered(dimension, totals):
    """A dimension's values as the table lists them: days in order, others by tasks."""
    if dimension == "day":
        return sorted(totals)
    return sorted(totals, key=lambda value: (-totals[value].tasks, value))


def charged_by_proxy(start, end):
    """The newest failed or cancelled tasks of the period that the proxy charged."""
    return list(
        Task.objects.for_list()
        .filter(
            submitted__gte=rollup.day_start(start),
            submitted__lt=rollup.day_start(end + timedelta(days=1)),
            status__in=prices.FAILED_STATUSES,
            raw__regex=rollup.CHARGED_QUOTA,
        )
        .order_by("-submitted", "-id")[:CHARGED_SHOWN]
    )


def text_of(value):
    """A dimension's value as the exports write it: a day as YYYY-MM-DD."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def as_decimal(figures):
    """The cost as one number where one currency is in use (for a spreadsheet's cell)."""
    if len(figures.cost) == 1:
        return prices.amount(next(iter(figures.cost.values())))
    return Decimal(0) if not figures.cost else figures.cost_text
