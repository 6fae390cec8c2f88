"""The usage roll-up per grouping (tasks/usage/cells.py) and its prices: every grouping
summed from the roll-up equals the same figures counted here from the tasks, in two
currencies, and a price saved or deleted re-rolls exactly the days from its valid_from."""

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import cycle
from zoneinfo import ZoneInfo

import pytest

from tasks.models import DailyUsage, Price, Source, Task, UsageCell, UsageRollup
from tasks.templatetags.task_tags import duration
from tasks.usage import cells, rollup, table
from tasks.usage.prices import money
from tests.conftest import make_task

pytestmark = pytest.mark.django_db
ZONE = "Asia/Shanghai"
DAYS = [date(2025, 3, d) for d in (3, 4, 5, 6)]
CALLERS = ["ann", "ben", "", "cy"]
ACCOUNTS = ["11", "22", "33"]
ACTIONS = ["IMAGINE", "UPSCALE", "VIDEO"]
MODES = ["fast", "relax", "", "turbo", "fast"]
STATUSES = ["SUCCESS", "FAILURE", "SUCCESS", "CANCEL", "IN_PROGRESS", "SUCCESS", "FAILURE"]


@pytest.fixture(autouse=True)
def zone(settings):
    settings.TIME_ZONE = ZONE


@pytest.fixture
def sources():
    return {
        "main": Source.objects.create(name="main", base_url="http://127.0.0.1:9"),
        "relay": Source.objects.create(name="relay", base_url="http://127.0.0.1:9", kind="newapi"),
    }


@pytest.fixture
def prices(sources):
    """0.1 USD a task; IMAGINE 0.2 from the second day; 0.3 EUR a task on the relay."""
    Price.objects.all().delete()
    Price.objects.create(price="0.1", valid_from=date(2020, 1, 1))
    Price.objects.create(action="IMAGINE", price="0.2", valid_from=DAYS[1])
    Price.objects.create(source=sources["relay"], price="0.3", currency="EUR",
                         valid_from=date(2020, 1, 1))  # fmt: skip


def price_of(source, action, day):
    """(currency, price in ten-thousandths) as `prices` sets them, worked out by hand."""
    if source == "relay":
        return "EUR", 3000
    return "USD", 2000 if action == "IMAGINE" and day >= DAYS[1] else 1000


def task_specs():
    """80 tasks over DAYS (two an hour from local 08:00), every dimension varied; each
    failed relay task at an odd position is one the relay charged (quota)."""
    values = zip(
        cycle(CALLERS), cycle(ACCOUNTS), cycle(ACTIONS), cycle(MODES), cycle(STATUSES),
        cycle(["main", "main", "relay"]), strict=False,
    )  # fmt: skip
    out = []
    for i, (caller, account, action, mode, status, source) in zip(range(80), values, strict=False):
        day = DAYS[i % len(DAYS)]
        at = datetime(day.year, day.month, day.day, 8 + i // 8, tzinfo=ZoneInfo(ZONE))
        quota = 500 if source == "relay" and status == "FAILURE" and i % 2 else 0
        out.append((source, caller, account, action, mode, status, at.astimezone(UTC), quota))
    return out


def store(sources, specs):
    for i, (source, caller, account, action, mode, status, at, quota) in enumerate(specs):
        make_task(sources[source], task_id=str(5000 + i),
                  record={"action": action, "status": status, "quota": quota},
                  action=action, status=status, caller=caller, account=account, mode=mode,
                  submitted=at)  # fmt: skip


@pytest.fixture
def specs(sources, prices):
    specs = task_specs()
    store(sources, specs)
    return specs


def counted_here(specs, dims, source_ids):
    """{(day, values of dims…, currency): [tasks, succeeded, failed, cancelled, quota,
    charged, charged failed, cost]} from the specs alone."""
    out = defaultdict(lambda: [0] * 8)
    for source, caller, account, action, mode, status, at, quota in specs:
        day = at.astimezone(ZoneInfo(ZONE)).date()
        values = {"caller": caller, "account": account, "source": source_ids[source],
                  "action": action, "mode": mode}  # fmt: skip
        currency, price = price_of(source, action, day)
        failed = status in ("FAILURE", "CANCEL")
        charged = 1 if not failed or quota else 0
        figures = out[(day, *(values[d] for d in dims), currency)]
        counts = [1, status == "SUCCESS", status == "FAILURE", status == "CANCEL", quota > 0,
                  charged, charged if failed else 0, price * charged]  # fmt: skip
        for i, n in enumerate(counts):
            figures[i] += n
    return dict(out)


def summed_here(dims):
    """cells.summed over DAYS, by day, without the run time (no task here has one)."""
    rows = cells.summed(DAYS[0], DAYS[-1], ("day", *dims))
    width = 1 + len(dims) + 1
    out = {}
    for row in rows:
        key, (n, succeeded, failed, cancelled, _run, quota, *rest) = row[:width], row[width:]
        out[key] = [n, succeeded, failed, cancelled, quota, *(int(v) for v in rest)]
    return out


def test_every_grouping_equals_the_tasks_counted_here(specs, sources):
    rollup.refresh()
    source_ids = {name: source.pk for name, source in sources.items()}
    for dims in [*cells.GROUPINGS, ("account", "caller")]:
        assert summed_here(dims) == counted_here(specs, dims, source_ids), dims
    # The stored groupings are read from their cells: one row per day, values, currency.
    for name, dims in cells.STORED.items():
        expected = counted_here(specs, dims, source_ids)
        assert UsageCell.objects.filter(dimensions=name).count() == len(expected), name
    assert not UsageCell.objects.filter(dimensions="account,caller").exists()


def test_two_currencies_are_written_side_by_side(admin_client, specs):
    period = {"start": DAYS[0].isoformat(), "end": DAYS[-1].isoformat(), "rows": "source",
              "cols": "day", "format": "csv"}  # fmt: skip
    response = admin_client.get("/usage/", period)
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    totals = {line[0]: line[7] for line in lines if line[1] == "*"}
    # main charges what did not fail (IMAGINE at 0.2 from the second day), the relay in
    # euros what did not fail and what it says it charged.
    main_usd = sum(
        price_of(s, a, at.astimezone(ZoneInfo(ZONE)).date())[1]
        for s, _c, _acc, a, _m, status, at, _q in specs
        if s == "main" and status not in ("FAILURE", "CANCEL")
    )
    relay = [spec for spec in specs if spec[0] == "relay"]
    relay_eur = 3000 * sum(1 for *_, status, _at, q in relay
                           if status not in ("FAILURE", "CANCEL") or q)  # fmt: skip
    assert totals["main"] == f"{main_usd / 10000:.2f}"
    assert totals["relay"] == f"{relay_eur / 10000:.2f}"
    assert totals["*"] == f"{relay_eur / 10000:.2f} EUR; {main_usd / 10000:.2f} USD"


def rolled_ids():
    """{day: ids of its DailyUsage rows}: a day rolled again gets new rows."""
    out = defaultdict(set)
    for pk, day in DailyUsage.objects.values_list("pk", "day"):
        out[day].add(pk)
    return out


def usd_by_day():
    return {day: int(cost) for day, _source, currency, *figures, cost
            in cells.summed(DAYS[0], DAYS[-1], ("day", "source")) if currency == "USD"}  # fmt: skip


def assert_rerolled_from(before, first):
    after = rolled_ids()
    for day in DAYS:
        assert (after[day] == before[day]) == (day < first), day
    assert UsageRollup.objects.get().stale_from is None


def test_a_price_saved_or_deleted_rerolls_exactly_the_days_from_its_valid_from(specs):
    # Tasks written long ago: a refresh re-rolls no day for a change to them.
    Task.objects.update(last_changed=datetime(2025, 3, 7, tzinfo=UTC))
    rollup.refresh()
    cost = usd_by_day()
    imagines = defaultdict(int)  # main's charged fast IMAGINE tasks per day
    for source, _c, _a, action, mode, status, at, _q in specs:
        charged = status not in ("FAILURE", "CANCEL")
        if source == "main" and action == "IMAGINE" and mode == "fast" and charged:
            imagines[at.astimezone(ZoneInfo(ZONE)).date()] += 1

    before = rolled_ids()
    dearer = Price.objects.create(action="IMAGINE", mode="fast", price="0.5", valid_from=DAYS[2])
    rollup.refresh()
    assert_rerolled_from(before, DAYS[2])
    assert usd_by_day() == {day: cost[day] + 3000 * imagines[day] * (day >= DAYS[2])
                            for day in DAYS}  # fmt: skip

    # Moved earlier: from its new day on; moved later: from its old day on.
    before = rolled_ids()
    dearer.valid_from = DAYS[1]
    dearer.save()
    rollup.refresh()
    assert_rerolled_from(before, DAYS[1])
    before = rolled_ids()
    dearer.valid_from = DAYS[3]
    dearer.save()
    rollup.refresh()
    assert_rerolled_from(before, DAYS[1])
    assert usd_by_day() == {day: cost[day] + 3000 * imagines[day] * (day >= DAYS[3])
                            for day in DAYS}  # fmt: skip

    before = rolled_ids()
    Price.objects.filter(pk=dearer.pk).delete()  # as the admin's bulk delete does
    rollup.refresh()
    assert_rerolled_from(before, DAYS[3])
    assert usd_by_day() == cost


def test_a_run_time_is_cut_only_to_what_the_page_shows_of_it():
    samples = [0, 59, 3599, 3600, 3661, 7199, 48 * 3600 - 1, 48 * 3600, 48 * 3600 + 3599]
    samples += list(range(0, 30 * 86400, 997))
    for seconds in samples:
        shown = table.shown_seconds(seconds)
        assert shown <= seconds
        assert duration(timedelta(seconds=shown)) == duration(timedelta(seconds=seconds))
    # Cells that show the same text share one: a year of run times, a few hundred texts.
    assert len({table.shown_seconds(s) for s in range(3600, 48 * 3600)}) == 47 * 60


def test_money_is_written_with_two_to_four_decimals_from_whole_units():
    written = {0: "0.00", 1: "0.0001", 1500: "0.15", 10_000: "1.00", 12_345: "1.2345"}
    written |= {8_000_000: "800.00", -5: "-0.0005", -25_000: "-2.50"}
    assert {units: money(units) for units in written} == written


def test_the_schedule_rolls_and_prices_the_days_before_a_page_asks(specs, sources):
    from django.utils.module_loading import import_string

    from tasks.bootstrap import SCHEDULES

    import_string(SCHEDULES["mjsite: usage roll-up"][0])()
    assert DailyUsage.objects.filter(day__in=DAYS).exists()
    source_ids = {name: source.pk for name, source in sources.items()}
    assert summed_here(("caller",)) == counted_here(specs, ("caller",), source_ids)
    # A page finds nothing left to roll.
    assert rollup.refresh(at_most_every=timedelta(minutes=1)) == 0
