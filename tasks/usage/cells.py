"""The usage figures per grouping: DailyUsage summed per day over one or two dimensions
(UsageCell), which is what /usage/ reads for a rows × cols table.

DailyUsage keeps every dimension and the status, so that a day can be priced; with 200
callers and 50 accounts it hardly groups (757,000 rows for 1,000,000 tasks). A table
needs only its two dimensions: summed over the others and with the statuses folded into
figures, a month of callers × actions is a few thousand rows. Every grouping of one or
two dimensions is kept but callers × accounts, which would be nearly as big as DailyUsage
itself (bench/usage.py prints the row counts): a table of those two is summed from
DailyUsage. The day is in every row, so a period is a range of the (dimensions, day)
index and a day grouping costs nothing more.

Cells are written from DailyUsage in SQL (INSERT … SELECT … GROUP BY) whenever the roll-up
writes its rows, for the same days.
"""

from datetime import timedelta
from itertools import combinations

from django.db import connection
from django.db.models import Case, F, Sum, Value, When

from tasks.models import DailyUsage, UsageCell
from tasks.reports.rollup import within
from tasks.usage.prices import FAILED_STATUSES

DIMENSIONS = ("account", "action", "caller", "mode", "source")  # besides the day
GROUPINGS = [
    dims
    for size in (1, 2)
    for dims in combinations(DIMENSIONS, size)
    if dims != ("account", "caller")
]


def counting(status):
    return Sum(Case(When(status=status, then=F("tasks")), default=Value(0)))


# A cell's figures from DailyUsage rows, summed over whatever the grouping leaves out.
FOLDED = {
    "tasks": Sum("tasks"),
    "succeeded": counting("SUCCESS"),
    "failed": counting("FAILURE"),
    "cancelled": counting("CANCEL"),
    "run_seconds": Sum("run_seconds"),
    "quota_charged": Sum("quota_charged"),
    "charged": Sum("charged"),
    "charged_failed": Sum(
        Case(When(status__in=FAILED_STATUSES, then=F("charged")), default=Value(0))
    ),
    "cost": Sum("cost"),
}
FIGURES = tuple(FOLDED)
SUMMED = {figure: Sum(figure) for figure in FIGURES}  # the same over cells


def sums(expressions):
    """Annotations under names of their own: one named like a column would stand for
    it in the CASEs of FOLDED."""
    return {f"sum_{figure}": expression for figure, expression in expressions.items()}


def name(dims):
    return ",".join(sorted(dims))


STORED = {name(dims): dims for dims in GROUPINGS}


def day_ranges(days):
    """Dates as [first, after last) ranges, consecutive days merged: for `within`."""
    out = []
    for day in sorted(days):
        if out and out[-1][1] == day:
            out[-1][1] = day + timedelta(days=1)
        else:
            out.append([day, day + timedelta(days=1)])
    return out


def write(days=None):
    """Sum the DailyUsage rows of `days` (None: every day) into the cells of every stored
    grouping; the cells of those days must have been deleted first (forget). A pair is
    summed from DailyUsage, a single dimension from its pair with the source (or the
    mode), which has about as few rows as itself: at a million tasks that takes the first
    roll's cells from 14 passes over DailyUsage to 9."""
    table = connection.ops.quote_name(UsageCell._meta.db_table)
    with connection.cursor() as cursor:
        for dims in sorted(GROUPINGS, key=len, reverse=True):  # pairs first
            dimensions = name(dims)
            if len(dims) == 2:
                rows, figures = DailyUsage.objects.all(), FOLDED
            else:
                pair = (*dims, "source") if dims != ("source",) else ("mode", "source")
                rows, figures = UsageCell.objects.filter(dimensions=name(pair)), SUMMED
            if days is not None:
                rows = rows.filter(within("day", day_ranges(days)))
            select = (
                rows.values("day", *dims, "currency")
                .annotate(dimensions=Value(dimensions), **sums(figures))
                .order_by()
            )
            columns = ["day", *dims, "currency", "dimensions", *FIGURES]
            names = ", ".join(
                connection.ops.quote_name(UsageCell._meta.get_field(c).column) for c in columns
            )
            sql, params = select.query.sql_with_params()
            cursor.execute(f"INSERT INTO {table} ({names}) {sql}", params)  # noqa: S608


def forget(days=None):
    """Delete the cells of `days` (None: every day)."""
    cells = UsageCell.objects.all()
    if days is not None:
        cells = cells.filter(within("day", day_ranges(days)), dimensions__in=list(STORED))
    cells.delete()


def summed(first, last, dims):
    """(values of dims…, currency, *FIGURES) of the local days first..last, summed per
    value of `dims` (one or two of DIMENSIONS and "day") and currency: from the cells of
    the grouping when it is stored, else from DailyUsage."""
    others = [d for d in dims if d != "day"]
    dimensions = name(others)
    period = {"day__gte": first, "day__lte": last}
    if dimensions not in STORED:
        rows = DailyUsage.objects.filter(**period).values_list(*dims, "currency")
        return list(rows.annotate(**sums(FOLDED)).order_by())
    rows = UsageCell.objects.filter(dimensions=dimensions, **period)
    if "day" in dims:  # one cell per day, values and currency: nothing to sum
        return list(rows.values_list(*dims, "currency", *FIGURES))
    return list(rows.values_list(*dims, "currency").annotate(**sums(SUMMED)).order_by())


def fold(rows, dims):
    """Priced DailyUsage rows (tuples of rollup.PRICED_FIELDS) in summed()'s form, one
    line per row: the tasks counted live, which no cell holds yet."""
    for row in rows:
        (day, source_id, caller, account, action, mode, status,
         n, run, quota, charged, currency, cost) = row  # fmt: skip
        values = {"day": day, "source": source_id, "caller": caller, "account": account,
                  "action": action, "mode": mode}  # fmt: skip
        yield (
            *(values[d] for d in dims),
            currency,
            n,
            n if status == "SUCCESS" else 0,
            n if status == "FAILURE" else 0,
            n if status == "CANCEL" else 0,
            run,
            quota,
            charged,
            charged if status in FAILED_STATUSES else 0,
            cost,
        )
