"""/usage/: every cell, total and export checked against figures computed here, from
tasks with known callers, accounts, actions, modes, statuses and times across a month
boundary (in TIME_ZONE) and a price change."""

import csv
import importlib
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import permutations

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.utils import timezone
from openpyxl import load_workbook

from tasks import deletion
from tasks.models import DailyUsage, Price, Source, Task
from tasks.usage import rollup
from tests.conftest import make_task
from tests.usage_page import UsageTable, figures

pytestmark = pytest.mark.django_db
create_prices = importlib.import_module("tasks.migrations.0017_usage").create_prices
ZONE = "Asia/Shanghai"  # UTC+8: 2025-01-31 16:30 UTC is February 1st there
PERIOD = {"start": "2025-01-01", "end": "2025-02-28"}
DIMENSIONS = ("caller", "account", "source", "action", "mode", "day")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# Each task with the price it pays, worked out by hand from the prices in `prices`:
# (source, caller, account, action, mode, status, submitted UTC, run seconds, quota, cost).
SPECS = [
    ("main", "alice", "111", "IMAGINE", "fast", "SUCCESS", utc(2025, 1, 15, 3), 60, 0, "0.10"),
    ("main", "alice", "111", "UPSCALE", "fast", "SUCCESS", utc(2025, 1, 31, 15, 30), 30, 0, "0.07"),
    # Local February 1st: a failure, not charged (and the price of February, were it).
    ("main", "bob", "222", "IMAGINE", "relax", "FAILURE", utc(2025, 1, 31, 16, 30), 5, 0, "0"),
    ("main", "bob", "222", "IMAGINE", "relax", "SUCCESS", utc(2025, 2, 10, 8), 90.5, 0, "0.20"),
    # new-api says it charged this failure (quota), at the relay's own price.
    ("relay", "alice", "111", "IMAGINE", "fast", "FAILURE", utc(2025, 2, 11, 9), 12, 25000, "0.30"),
    ("relay", "carol", "222", "VIDEO", "turbo", "CANCEL", utc(2025, 2, 12, 10), None, 0, "0"),
    ("main", "", "111", "DESCRIBE", "", "SUCCESS", utc(2025, 2, 13, 11), 20, 0, "0.05"),
    ("main", "bob", "222", "IMAGINE", "fast", "IN_PROGRESS", utc(2025, 2, 14, 12), None, 0, "0.20"),
    # Outside the period (local March 1st), never counted in it.
    ("main", "bob", "222", "IMAGINE", "fast", "SUCCESS", utc(2025, 2, 28, 16, 0), 10, 0, "0.20"),
]


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
    # A transactional test before this one flushed the migration's rows: put them back.
    create_prices(django_apps, None)
    # The migration's defaults, plus: IMAGINE dearer from February on, a fast UPSCALE
    # price, and the relay's own price for every action.
    Price.objects.create(action="IMAGINE", price="0.2", valid_from=date(2025, 2, 1))
    Price.objects.create(action="UPSCALE", mode="fast", price="0.07", valid_from=date(2020, 1, 1))
    Price.objects.create(source=sources["relay"], price="0.3", valid_from=date(2020, 1, 1))


def store(sources, specs):
    for i, (src, caller, account, action, mode, status, at, run, quota, _cost) in enumerate(specs):
        started = at + timedelta(seconds=7)
        finished = started + timedelta(seconds=run) if run is not None else None
        make_task(
            sources[src],
            task_id=f"{1000 + i}",
            record={"action": action, "status": status, "quota": quota},
            action=action,
            status=status,
            caller=caller,
            account=account,
            mode=mode,
            submitted=at,
            started=started,
            finished=finished,
        )


@pytest.fixture
def tasks(sources, prices):
    store(sources, SPECS)


def local_day(moment):
    return timezone.localtime(moment, timezone.get_fixed_timezone(8 * 60)).date()


def expected(rows, cols, first=date(2025, 1, 1), last=date(2025, 2, 28)):
    """{(row, col): [tasks, succeeded, failed, cancelled, run seconds, cost]} with row
    totals (row, "*") and the grand total ("*", "*"), from SPECS alone."""
    out = defaultdict(lambda: [0, 0, 0, 0, 0.0, Decimal(0)])
    for src, caller, account, action, mode, status, at, run, _quota, cost in SPECS:
        day = local_day(at)
        if not first <= day <= last:
            continue
        values = {"caller": caller, "account": account, "source": src, "action": action,
                  "mode": mode, "day": day.isoformat()}  # fmt: skip
        r, c = values[rows], values[cols]
        for key in ((r, c), (r, "*"), ("*", "*")):
            figures = out[key]
            figures[0] += 1
            figures[1] += status == "SUCCESS"
            figures[2] += status == "FAILURE"
            figures[3] += status == "CANCEL"
            figures[4] += run if run is not None else 0
            figures[5] += Decimal(cost)
    return out


def read_csv(content):
    lines = list(csv.reader(io.StringIO(content.decode())))
    assert lines[0] == ["row", "col", "tasks", "succeeded", "failed", "cancelled",
                        "run_seconds", "cost"]  # fmt: skip
    return lines[1:]


def as_expected_lines(figures_by_key):
    return {
        key: [str(v) for v in f[:4]] + [pytest.approx(f[4], abs=0.01), f"{f[5]:.2f}"]
        for key, f in figures_by_key.items()
    }


def csv_figures(lines):
    return {(row, col): [*values[:4], float(values[4]), values[5]] for row, col, *values in lines}


def test_every_cell_and_total_of_every_grouping_matches_the_tasks(admin_client, tasks):
    for rows, cols in permutations(DIMENSIONS, 2):
        response = admin_client.get("/usage/", {**PERIOD, "rows": rows, "cols": cols,
                                                "format": "csv"})  # fmt: skip
        assert response.status_code == 200
        lines = read_csv(b"".join(response.streaming_content))
        assert csv_figures(lines) == as_expected_lines(expected(rows, cols)), (rows, cols)


def test_the_csv_lists_each_rows_pairs_then_its_total_and_ends_with_the_grand_total(
    admin_client, tasks
):
    response = admin_client.get("/usage/", {**PERIOD, "rows": "caller", "cols": "mode",
                                            "format": "csv"})  # fmt: skip
    lines = read_csv(b"".join(response.streaming_content))
    assert [line[:2] for line in lines] == [
        ["alice", "fast"], ["alice", "*"],  # most tasks first, ties by name
        ["bob", "fast"], ["bob", "relax"], ["bob", "*"],
        ["", ""], ["", "*"],
        ["carol", "turbo"], ["carol", "*"],
        ["*", "*"],
    ]  # fmt: skip
    assert lines[-1][2:] == ["8", "4", "2", "1", "217.500", "0.92"]


def test_the_page_shows_what_the_csv_and_the_xlsx_hold(admin_client, tasks):
    params = {**PERIOD, "rows": "caller", "cols": "action"}
    page = admin_client.get("/usage/", params)
    assert page.status_code == 200
    table = UsageTable(page.content.decode())
    want = expected("caller", "action")
    columns = table.columns[1:-1]
    assert sorted(columns) == sorted({c for (r, c) in want if r != "*" and c != "*"})
    shown = {}
    for label, cells in table.rows:
        row = "" if label == "—" else label
        for col, cell in zip([*columns, "*"], cells, strict=True):
            if cell is not None:
                key = ("*" if row == "Total" else row, col)
                shown[key] = figures(cell)
    for key, f in want.items():
        assert shown[key] == (*f[:4], f"{f[5]:.2f}"), key
    # The column totals of the page's last row.
    for col in columns:
        assert shown["*", col][0] == sum(f[0] for (r, c), f in want.items() if c == col)

    csv_lines = read_csv(b"".join(admin_client.get("/usage/", {**params, "format": "csv"})
                                  .streaming_content))  # fmt: skip
    from_csv = {
        (r, c): (int(v[0]), int(v[1]), int(v[2]), int(v[3]), v[5]) for r, c, *v in csv_lines
    }
    assert {k: v for k, v in shown.items() if k in from_csv} == from_csv

    xlsx = admin_client.get("/usage/", {**params, "format": "xlsx"})
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    grid = [list(r) for r in sheet.iter_rows(values_only=True)]
    head = grid[0]
    assert grid[1][1:7] == ["tasks", "succeeded", "failed", "cancelled", "run_seconds", "cost"]
    assert [head[1 + 6 * i] for i in range(len(columns))] == columns
    for line in grid[2:]:
        row = "*" if line[0] == "total" else (line[0] or "")
        for i, col in enumerate([*columns, "*"]):
            cell = line[1 + 6 * i : 7 + 6 * i]
            if cell[0] is None:
                assert (row, col) not in shown
                continue
            tasks_, s, f, c, run, cost = cell
            assert (tasks_, s, f, c, f"{Decimal(str(cost)):.2f}") == shown[row, col]


def test_a_month_uses_the_prices_valid_then(admin_client, tasks):
    january = {"start": "2025-01-01", "end": "2025-01-31", "rows": "action", "cols": "source",
               "format": "csv"}  # fmt: skip
    lines = read_csv(b"".join(admin_client.get("/usage/", january).streaming_content))
    assert csv_figures(lines) == as_expected_lines(
        expected("action", "source", date(2025, 1, 1), date(2025, 1, 31))
    )
    assert lines[-1][7] == "0.17"  # 0.10 + 0.07: February's dearer IMAGINE changes nothing
    # A price added today does not rewrite January either.
    Price.objects.create(action="IMAGINE", price="5", valid_from=timezone.localdate())
    again = read_csv(b"".join(admin_client.get("/usage/", january).streaming_content))
    assert again == lines


def test_days_are_local_days_and_a_new_time_zone_rolls_them_again(admin_client, tasks, settings):
    params = {**PERIOD, "rows": "day", "cols": "source", "format": "csv"}
    lines = read_csv(b"".join(admin_client.get("/usage/", params).streaming_content))
    days = [line[0] for line in lines if line[1] == "*"]
    assert "2025-02-01" in days  # 2025-01-31 16:30 UTC, in Shanghai
    settings.TIME_ZONE = "UTC"
    lines = read_csv(b"".join(admin_client.get("/usage/", params).streaming_content))
    days = [line[0] for line in lines if line[1] == "*"]
    assert "2025-02-01" not in days
    assert {line[0]: line[2] for line in lines if line[1] == "*"}["2025-01-31"] == "2"


def test_a_task_stored_a_moment_ago_is_counted(admin_client, sources, prices):
    today = timezone.localdate()
    params = {"start": today.isoformat(), "end": today.isoformat(), "format": "csv"}
    assert read_csv(b"".join(admin_client.get("/usage/", params).streaming_content)) == [
        ["*", "*", "0", "0", "0", "0", "0.000", "0.00"]
    ]
    make_task(sources["main"], task_id="2001", caller="dan", action="IMAGINE",
              submitted=timezone.now())  # fmt: skip
    lines = read_csv(b"".join(admin_client.get("/usage/", params).streaming_content))
    assert lines[-1][:3] == ["*", "*", "1"]
    assert lines[0][:3] == ["dan", "IMAGINE", "1"]


def test_a_changed_task_is_counted_again_on_its_day(sources, prices):
    store(sources, SPECS)
    rollup.refresh()
    bob = DailyUsage.objects.filter(day=date(2025, 2, 14), caller="bob")
    assert list(bob.values_list("status", "tasks")) == [("IN_PROGRESS", 1)]
    Task.objects.filter(task_id="1007").update(status="SUCCESS", last_changed=timezone.now())
    rollup.refresh()
    assert list(bob.values_list("status", "tasks")) == [("SUCCESS", 1)]
    assert DailyUsage.objects.filter(day__lt=date(2025, 2, 1)).count() == 2


def test_a_deleted_task_leaves_its_day_at_once(sources, prices):
    store(sources, SPECS)
    rollup.refresh()
    bob = DailyUsage.objects.filter(day=date(2025, 2, 14), caller="bob")
    assert bob.count() == 1
    rows = list(Task.objects.filter(task_id="1007").values_list(*deletion.COLUMNS))
    deletion.delete_tasks(rows)
    assert not bob.exists()  # without another refresh
    assert DailyUsage.objects.filter(day=date(2025, 2, 10), caller="bob").count() == 1


def test_the_failed_tasks_the_proxy_charged_are_listed_with_links(admin_client, tasks):
    page = admin_client.get("/usage/", PERIOD).content.decode()
    assert 'class="charged-tasks"' in page
    charged = Task.objects.get(task_id="1004")
    assert charged.get_absolute_url().replace("&", "&amp;") in page
    assert (
        "/tasks/?status=FAILURE&amp;submitted_after=2025-01-01&amp;submitted_before=2025-03-01"
        in page
    )


def test_numbers_link_to_the_task_list_filtered_to_them(admin_client, tasks):
    page = admin_client.get("/usage/", {**PERIOD, "rows": "caller", "cols": "mode"})
    html = page.content.decode()
    assert (
        "/tasks/?caller=bob&amp;mode=relax&amp;status=FAILURE&amp;submitted_after=2025-01-01"
        "&amp;submitted_before=2025-03-01" in html
    )
    by_day = admin_client.get("/usage/", {**PERIOD, "rows": "day", "cols": "action"})
    assert (
        "/tasks/?action=VIDEO&amp;status=CANCEL&amp;submitted_after=2025-02-12"
        "&amp;submitted_before=2025-02-13" in by_day.content.decode()
    )


@pytest.mark.parametrize(
    "params",
    [
        {"start": "yesterday"},
        {"end": "2025-02-30"},
        {"start": "2025-03-01", "end": "2025-02-01"},
        {"start": "1990-01-01", "end": "2025-01-01"},
        {"rows": "colour"},
        {"rows": "day", "cols": "day"},
        {"format": "pdf"},
        {"start": "2025-01-01\x00"},
    ],
)
def test_bad_parameters_are_a_400_that_says_why(admin_client, params):
    response = admin_client.get("/usage/", params)
    assert response.status_code == 400
    assert 'class="message error"' in response.content.decode()
    if "format" in params:
        return
    as_csv = admin_client.get("/usage/", {**params, "format": "csv"})
    assert as_csv.status_code == 400
    assert as_csv["Content-Type"].startswith("text/plain")


def test_it_needs_a_login_and_viewers_see_it(client, django_user_model, tasks):
    assert client.get("/usage/").status_code == 302
    viewer = django_user_model.objects.create_user("vera", password="pw")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    assert client.get("/usage/", PERIOD).status_code == 200
    assert client.get("/usage/", {**PERIOD, "format": "xlsx"}).status_code == 200


def test_only_staff_with_the_permission_edit_prices(client, admin_client, django_user_model):
    price = Price.objects.get(action="IMAGINE", source=None)
    url = f"/admin/tasks/price/{price.pk}/change/"
    assert admin_client.get(url).status_code == 200
    staff_viewer = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    staff_viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(staff_viewer)
    assert client.get(url).status_code == 200  # a viewer sees it
    form = {"action": "IMAGINE", "mode": "", "price": "9", "currency": "USD",
            "valid_from": "2025-01-01"}  # fmt: skip
    assert client.post(url, form).status_code == 403
    assert Price.objects.get(pk=price.pk).price == Decimal("0.1")


def test_the_default_prices_are_new_apis(db):
    defaults = dict(Price.objects.filter(source=None, mode="").values_list("action", "price"))
    assert defaults["VIDEO"] == Decimal("0.8")
    assert defaults["IMAGINE"] == defaults["PAN"] == defaults[""] == Decimal("0.1")
    assert defaults["UPSCALE"] == defaults["DESCRIBE"] == Decimal("0.05")
    assert defaults["INPAINT"] == defaults["CUSTOM_ZOOM"] == Decimal("0")


def test_callers_are_escaped_on_the_page_and_no_formula_in_the_exports(
    admin_client, sources, prices
):
    today = timezone.localdate().isoformat()
    make_task(sources["main"], task_id="3001", caller="<b>x</b>", submitted=timezone.now())
    make_task(sources["main"], task_id="3002", caller="=HYPERLINK(1)", submitted=timezone.now())
    params = {"start": today, "end": today}
    html = admin_client.get("/usage/", params).content.decode()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    lines = read_csv(b"".join(admin_client.get("/usage/", {**params, "format": "csv"})
                              .streaming_content))  # fmt: skip
    assert "'=HYPERLINK(1)" in [line[0] for line in lines]
    xlsx = admin_client.get("/usage/", {**params, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    cells = [row[0] for row in sheet.iter_rows()]
    formula = next(c for c in cells if c.value == "=HYPERLINK(1)")
    assert formula.data_type == "s"


def test_a_source_secret_sent_as_a_caller_is_masked(admin_client, sources, prices):
    Source.objects.filter(name="main").update(secret="sk-very-secret-1")
    make_task(sources["main"], task_id="4001", caller="sk-very-secret-1", submitted=timezone.now())
    today = timezone.localdate().isoformat()
    page = admin_client.get("/usage/", {"start": today, "end": today})
    assert "sk-very-secret-1" not in page.content.decode()
    as_csv = b"".join(admin_client.get("/usage/", {"start": today, "end": today, "format": "csv"})
                      .streaming_content)  # fmt: skip
    assert b"sk-very-secret-1" not in as_csv
