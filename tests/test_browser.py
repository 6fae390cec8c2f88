"""The pages in a real browser: headless Chromium (Debian's) driven by Playwright.

Never `playwright install`: the browser is the system's /usr/bin/chromium. Without it the
tests skip with a loud reason, except under CI=true, where they fail.
"""

import os
import re
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse

from tasks.models import Source, Task
from tasks.sync import ingest, sync_source

from .test_pages import record

# Playwright's sync API runs an event loop in this thread; the ORM calls made between
# browser steps are plain synchronous code all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-browser-123"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def page(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("boss", "", PASSWORD)
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, color_scheme="light", locale="en-US"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(live_server.url + reverse("login"))
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    yield page
    context.close()


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


def row_ids(page):
    return page.locator("table.tasks a.task-id").all_inner_texts()


def test_a_person_filters_by_status_action_time_and_text(page, live_server, source):
    now = int(time.time() * 1000)
    ingest(
        source,
        [
            record(1, id="1001", submitTime=now - 30 * 60_000, prompt="黄昏时的灯塔"),
            record(
                2, id="1002", submitTime=now - 5 * 3600_000, status="FAILURE", failReason="任务超时"
            ),
            record(3, id="1003", submitTime=now - 3 * 86400_000, action="UPSCALE"),
            record(4, id="1004", submitTime=now - 10 * 86400_000, prompt="猫猫"),
        ],
    )
    page.goto(live_server.url + reverse("tasks:list"))
    assert row_ids(page) == ["1001", "1002", "1003", "1004"]

    page.click("a.chip[data-facet=status][data-value=FAILURE]")
    page.wait_for_url(re.compile(r"status=FAILURE"))
    assert row_ids(page) == ["1002"]
    page.click("a.chip[data-facet=status][data-value=FAILURE]")  # and off again
    page.wait_for_url(re.compile(r"/tasks/\?$"))

    page.click("a.chip[data-facet=action][data-value=UPSCALE]")
    page.wait_for_url(re.compile(r"action=UPSCALE"))
    assert row_ids(page) == ["1003"]
    page.goto(live_server.url + reverse("tasks:list"))

    page.click("label.chip:has-text('Last 24 hours')")  # submits by itself
    page.wait_for_url(re.compile(r"range=24h"))
    assert row_ids(page) == ["1001", "1002"]

    page.fill("input[name=q]", "灯塔")
    page.click("button:has-text('Filter')")
    page.wait_for_url(re.compile(r"q=%E7%81%AF%E5%A1%94"))
    assert row_ids(page) == ["1001"]

    page.goto(live_server.url + reverse("tasks:list"))
    page.fill("input[name=q]", "猫猫")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q="))
    assert row_ids(page) == ["1004"]


def test_a_person_pages_deep_into_a_long_list(page, live_server, source):
    ingest(source, [record(n) for n in range(260)])
    page.goto(live_server.url + reverse("tasks:list") + "?action=IMAGINE")
    seen = row_ids(page)
    for _ in range(4):
        page.click("a[rel=next]")
        page.wait_for_load_state()
        assert "action=IMAGINE" in page.url and "cursor=" in page.url
        seen += row_ids(page)
    assert len(seen) == len(set(seen)) == 250
    page.click("a[rel=next]")
    page.wait_for_load_state()
    assert len(row_ids(page)) == 10
    assert page.locator("text=End of the list.").is_visible()


def test_a_person_opens_a_task_and_sees_its_image(page, live_server, start_sim, make_source, clock):
    sim = start_sim("novicezk")
    src = make_source(sim)
    task_id = sim.submit(prompt="黄昏时的灯塔")
    clock.advance(600)
    sync_source(src, full=True)
    page.goto(live_server.url + reverse("tasks:list"))

    page.click(f"a.task-id:text('{task_id}')")

    page.wait_for_url(re.compile(rf"/tasks/{task_id}/"))
    image = page.locator(".detail-image img")
    image.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert image.get_attribute("src").startswith(sim.url)
    assert page.locator("text=黄昏时的灯塔").first.is_visible()
    assert page.locator(".detail-live .badge").first.inner_text() == "SUCCESS"


def test_the_lightbox_pages_through_the_list(page, live_server, start_sim, make_source, clock):
    sim = start_sim("novicezk")
    src = make_source(sim)
    first = sim.submit(prompt="灯塔")
    second = sim.submit(prompt="猫猫")
    clock.advance(600)
    sync_source(src, full=True)
    page.goto(live_server.url + reverse("tasks:list"))

    page.locator(f"#task-{Task.objects.get(task_id=second).pk} a.thumb").click()

    box = page.locator("#lightbox")
    box.wait_for(state="visible")
    assert second in box.locator("figcaption").inner_text()
    page.keyboard.press("ArrowRight")
    assert first in box.locator("figcaption").inner_text()
    page.keyboard.press("Escape")
    box.wait_for(state="hidden")


def test_a_person_switches_the_pages_to_chinese(page, live_server, source):
    ingest(source, [record(1)])
    page.goto(live_server.url + reverse("tasks:list"))

    page.select_option("#language", "zh-hans")

    page.wait_for_selector("html[lang=zh-hans]")
    assert page.locator("h1").inner_text() == "任务"
    assert page.locator("nav.mainnav").inner_text().split() == ["概览", "任务", "图库", "管理后台"]


def test_a_running_task_reaches_100_percent_without_a_reload(
    page, live_server, start_sim, make_source
):
    sim = start_sim("novicezk", clock=None, speed=8)  # real time, a task lives ~10 s
    src = make_source(sim)
    task_id = sim.submit(prompt="灯塔")
    sync_source(src)
    task = Task.objects.get(task_id=task_id)
    assert task.status != "SUCCESS"
    page.goto(live_server.url + reverse("tasks:list"))
    page.evaluate("window.notReloaded = true")
    row = page.locator(f"#task-{task.pk}")
    seen_progress = set()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sync_source(src)  # the schedule's light pass, every second
        page.wait_for_timeout(1000)
        if row.locator("progress").count():
            seen_progress.add(row.locator("progress").get_attribute("value"))
        if row.locator(".badge").inner_text() == "SUCCESS":
            break

    assert row.locator(".badge").inner_text() == "SUCCESS"
    assert row.locator("progress").count() == 0
    assert page.evaluate("window.notReloaded") is True
    assert len(seen_progress) >= 2  # it moved while we watched
    # The detail page of a finished task no longer polls.
    page.goto(live_server.url + task.get_absolute_url())
    assert page.locator("#live[hx-trigger]").count() == 0


@pytest.mark.skipif(not os.getenv("MJ_SCREENSHOTS"), reason="set MJ_SCREENSHOTS=1 to refresh")
def test_screenshots_for_the_readme(page, live_server, start_sim, make_source):
    # Realistic data: a month of simulated history whose image links still live.
    sim = start_sim("novicezk", tasks=400, clock=None, speed=4, image_ttl=60 * 86400)
    src = make_source(sim, name="main")
    sync_source(src, full=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = {
        "overview": "/",
        "list": reverse("tasks:list"),
        "gallery": reverse("tasks:gallery"),
    }
    upscale = Task.objects.filter(action="UPSCALE", status="SUCCESS").order_by("-submitted")[0]
    shots["detail"] = upscale.get_absolute_url()
    for name, url in shots.items():
        cache.clear()  # logging in opened the overview before the sync: drop its figures
        page.goto(live_server.url + url)
        # Scroll through once so every lazy thumbnail loads before the full-page shot.
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_load_state("networkidle")
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(300)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=name != "list")
    page.goto(live_server.url + reverse("tasks:list"))
    page.locator("a.thumb").first.click()
    page.wait_for_timeout(500)
    page.screenshot(path=SCREENSHOTS / "lightbox.png")
