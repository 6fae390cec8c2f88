"""Prices: which Price row a kind of task pays on a day, and what a row of counts costs.

The most specific row wins: one for the task's source over the default (source None),
then one for its action over any action (blank), then one for its mode over any mode;
among rows equally specific, the one with the latest valid_from on or before the day.
So adding a row from the first of a month changes that month on, never the months
before it.
"""

from collections import defaultdict
from decimal import Decimal

from tasks.models import Price

FAILED_STATUSES = ("FAILURE", "CANCEL")
COST_UNIT = Decimal("0.0001")  # Price.price's decimal places


class PriceBook:
    """Every price, read once per report (the table holds a few dozen rows)."""

    def __init__(self, prices=None):
        self.by_kind = defaultdict(list)  # (source_id, action, mode) -> newest first
        rows = Price.objects.all() if prices is None else prices
        for price in sorted(rows, key=lambda p: p.valid_from, reverse=True):
            self.by_kind[price.source_id, price.action, price.mode].append(price)
        self.found = {}

    def price_for(self, day, source_id, action, mode):
        """The Price a task of this kind submitted on `day` pays; None when none applies."""
        key = (day, source_id, action, mode)
        if key not in self.found:
            self.found[key] = self.lookup(*key)
        return self.found[key]

    def lookup(self, day, source_id, action, mode):
        for kind in (
            (s, a, m)
            for s in (source_id, None)
            for a in dict.fromkeys((action, ""))
            for m in dict.fromkeys((mode, ""))
        ):
            for price in self.by_kind.get(kind, ()):
                if price.valid_from <= day:
                    return price
        return None


def charged(price, status, tasks, quota_charged):
    """How many of `tasks` (all of one status) are charged: every one but failed and
    cancelled ones, which are when the price says so or the proxy did."""
    if status not in FAILED_STATUSES:
        return tasks
    return tasks if price is not None and price.charge_failed else quota_charged


def cost_units(price, count):
    """The cost of `count` charged tasks in COST_UNITs: a whole number, so sums of any
    size are exact on every database (a price has four decimals)."""
    return 0 if price is None else int(price.price / COST_UNIT) * count


def amount(units):
    return Decimal(units) * COST_UNIT


def money(units):
    """An amount in COST_UNITs as text: at least two decimals, no trailing zeros beyond
    them. Integer arithmetic: a table writes thousands of them."""
    whole, fraction = divmod(abs(units), 10_000)
    decimals = f"{fraction:04d}".rstrip("0").ljust(2, "0")
    return f"{'-' if units < 0 else ''}{whole}.{decimals}"
