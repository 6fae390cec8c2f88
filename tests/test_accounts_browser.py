"""The Discord accounts' pages in a real browser (headless Chromium, as tests/test_browser.py
drives it); with MJ_SCREENSHOTS=1 the run writes the README's docs/screenshots/accounts.png."""

import os

import pytest
import requests
from django.urls import reverse
from playwright.sync_api import expect

from tasks.ingest.sync import sync_source, sync_source_accounts
from tasks.models import Account
from tests.test_browser import SCREENSHOTS, page  # noqa: F401 - the logged-in page fixture

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_person_sees_a_disabled_account_and_follows_it_to_its_tasks(
    page,  # noqa: F811
    live_server,
    start_sim,
    make_source,
    tmp_path,
):
    sim = start_sim("trueai", tasks=300, clock=None, speed=4, admin_token="adm")
    source = make_source(sim, name="main", admin_token="adm")
    sync_source(source, full=True)
    first, second = (a.channel for a in sim.accounts.list[:2])
    requests.post(
        f"{sim.url}/_sim/accounts/{first}/disable", json={"reason": "封禁 banned"}, timeout=5
    )
    requests.post(f"{sim.url}/_sim/accounts/{second}/exhaust", timeout=5)
    sync_source_accounts(source.pk)

    page.goto(live_server.url + reverse("accounts:list"))
    row = page.locator(f"tr.account-row[data-channel='{first}']")
    expect(row.locator(".badge.bad")).to_have_text("disabled")
    expect(row).to_contain_text("封禁 banned")
    expect(page.locator(f"tr[data-channel='{second}'] .badge.wait")).to_have_text(
        "fast time exhausted"
    )
    shots_dir = SCREENSHOTS if os.getenv("MJ_SCREENSHOTS") else tmp_path
    shots_dir.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shots_dir / "accounts.png", full_page=True)

    row.locator("td a").first.click()
    account = Account.objects.get(channel_id=first)
    page.wait_for_url(live_server.url + account.get_absolute_url())
    expect(page.locator("table.account-timeline")).to_contain_text("封禁 banned")
    expect(page.locator("figure.chart")).to_be_visible()
    page.click("a.tasks-link")
    page.wait_for_url(f"**/tasks/?account={first}")
    ids = page.locator("table.tasks a.task-id").all_inner_texts()
    assert ids and set(ids) <= {
        t for t in account.source.tasks.filter(account=first).values_list("task_id", flat=True)
    }
