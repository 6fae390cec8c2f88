"""/usage/ in headless Chromium: the table, the chart, a number that opens the task list
filtered to it, and the README's screenshot (MJ_SCREENSHOTS=1 writes docs/screenshots)."""

import os
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests import test_browser, test_usage
from tests.test_usage import SPECS, ZONE, store

# The fixtures this test shares with those modules.
page, prices, sources = test_browser.page, test_usage.prices, test_usage.sources

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_person_reads_usage_and_opens_the_tasks_behind_a_number(
    page,
    live_server,
    sources,
    prices,
    settings,
    tmp_path,
):
    settings.TIME_ZONE = ZONE
    store(sources, SPECS)
    url = live_server.url + reverse("usage:usage") + "?start=2025-01-01&end=2025-02-28"
    page.goto(url + "&rows=caller&cols=action")
    table = page.locator("table.usage-table")
    expect(table).to_be_visible()
    expect(page.locator("figure.usage-chart svg rect").first).to_be_visible()
    total = table.locator("tfoot td.total .cell-tasks")
    expect(total).to_have_text("8")
    expect(table.locator("tfoot td.total .cell-cost")).to_have_text("0.92")
    shots = test_browser.SCREENSHOTS if os.getenv("MJ_SCREENSHOTS") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "usage.png"), full_page=True)

    bob = table.locator("tbody tr", has=page.locator("th", has_text="bob"))
    bob.locator("td.total .cell-tasks a").click()
    page.wait_for_url(re.compile(r"/tasks/\?caller=bob&submitted_after=2025-01-01"))

    page.goto(url + "&rows=day&cols=day")
    expect(page.locator(".usage-errors")).to_contain_text("two different groupings")
