"""The pages in a real browser: headless Chromium (Debian's) driven by Playwright.

Never `playwright install`: the browser is the system's /usr/bin/chromium. Without it the
tests skip with a loud reason, except under CI (tests/conftest.py's IN_CI), where they fail.

A page is read only once what it should show is there: Playwright's expect() and
wait_for_* wait for the condition itself (with a timeout generous for a loaded machine),
never for a fixed time.
"""

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from tasks.ingest.sync import ingest, sync_source
from tasks.models import Source, Task
from tasks.reports import rollup
from tests.test_pages import record

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


def test_custom_dates_replace_a_chosen_preset(page, live_server, source):
    now = timezone.now()
    ingest(
        source,
        [
            record(1, id="1001", submitTime=ms(now - timedelta(minutes=30))),
            record(2, id="1002", submitTime=ms(now - timedelta(days=3))),
            record(3, id="1003", submitTime=ms(now - timedelta(days=10))),
        ],
    )
    page.goto(live_server.url + reverse("tasks:list"))
    page.click("label.chip:has-text('Last 24 hours')")
    page.wait_for_url(re.compile(r"range=24h"))
    assert row_ids(page) == ["1001"]

    # Then a custom range four to two days back (the site's time zone, as the form reads it).
    page.click(".custom-range summary")
    preset = page.locator("input[name=range][value='24h']")
    # Choosing Custom lets go of the preset (on the details' "toggle" event, which the
    # browser fires after the click returns: expect() waits for it).
    expect(preset).not_to_be_checked()
    page.fill("input[name=submitted_after]", local_input(now - timedelta(days=4)))
    page.fill("input[name=submitted_before]", local_input(now - timedelta(days=2)))
    page.click("button:has-text('Filter')")
    page.wait_for_url(re.compile(r"submitted_after="))

    assert "range=24h" not in page.url
    assert row_ids(page) == ["1002"]
    expect(preset).not_to_be_checked()
    assert page.locator(".custom-range summary.selected").count() == 1

    # A preset again: the typed dates go, the preset is the filter.
    page.click("label.chip:has-text('Last 7 days')")
    page.wait_for_url(re.compile(r"range=7d"))
    assert "submitted_after=&" in page.url + "&" and "submitted_before=&" in page.url + "&"
    assert row_ids(page) == ["1001", "1002"]
    assert page.locator("input[name=range][value='7d']").is_checked()


def test_a_phone_in_dark_mode_gets_dark_pages_that_fit_the_screen(
    page, browser, live_server, start_sim, make_source, clock
):
    # Realistic records: a simulated history with long prompts, fail reasons, buttons.
    sim = start_sim("novicezk", tasks=60)
    src = make_source(sim, name="main")
    shortened = sim.submit(action="SHORTEN", prompt="黄昏时的灯塔, cinematic lighting --ar 16:9")
    # An image prompt starts with a long unbroken link.
    link = "https://cdn.discordapp.com/attachments/1100000000000000001/1100000000000000002/"
    failed = sim.submit(prompt=f"{link}{'reference_' * 8}.png 一只猫" + "在窗台上" * 40, fail=True)
    clock.advance(600)
    sync_source(src, full=True)
    upscale = Task.objects.filter(action="UPSCALE").order_by("-submitted").first()
    urls = [
        reverse("tasks:list"),
        reverse("tasks:gallery"),
        Task.objects.get(task_id=shortened).get_absolute_url(),
        Task.objects.get(task_id=failed).get_absolute_url(),
        "/",
    ]
    if upscale:
        urls.append(upscale.get_absolute_url())
    schemes = {}
    for scheme in ("dark", "light"):
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=3,
            is_mobile=True,
            has_touch=True,
            color_scheme=scheme,
            locale="en-US",
        )
        context.add_cookies(page.context.cookies())  # the login of the page fixture
        phone = context.new_page()
        colours = {}
        for url in urls:
            phone.goto(live_server.url + url)
            phone.wait_for_load_state()
            widths = phone.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert widths[0] <= widths[1], (scheme, url, widths)
            colours[url] = phone.evaluate(
                "[getComputedStyle(document.body).backgroundColor,"
                " getComputedStyle(document.body).color]"
            )
        schemes[scheme] = colours
        context.close()

    for url in urls:
        dark_bg, dark_text = schemes["dark"][url]
        light_bg, light_text = schemes["light"][url]
        assert dark_bg != light_bg and dark_text != light_text, url
        assert luminance(dark_bg) < 0.1 < 0.8 < luminance(light_bg), (url, dark_bg, light_bg)
        assert luminance(dark_text) > 0.5, (url, dark_text)


def ms(moment):
    return int(moment.timestamp() * 1000)


def local_input(moment):
    """A moment as a datetime-local input holds it, in the site's time zone."""
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M:%S")


def luminance(css_colour):
    """Relative luminance (0 black, 1 white) of an "rgb(r, g, b)" computed colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_a_person_pages_deep_into_a_long_list(page, live_server, source):
    ingest(source, [record(n) for n in range(260)])
    page.goto(live_server.url + reverse("tasks:list") + "?action=IMAGINE")
    seen = row_ids(page)
    for _ in range(4):
        with page.expect_navigation():  # the next page, not the one still showing
            page.click("a[rel=next]")
        assert "action=IMAGINE" in page.url and "cursor=" in page.url
        seen += row_ids(page)
    assert len(seen) == len(set(seen)) == 250
    with page.expect_navigation():
        page.click("a[rel=next]")
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
    expect(box.locator("figcaption")).to_contain_text(second)
    page.keyboard.press("ArrowRight")
    expect(box.locator("figcaption")).to_contain_text(first)
    page.keyboard.press("Escape")
    box.wait_for(state="hidden")


def test_a_person_switches_the_pages_to_chinese(page, live_server, source):
    ingest(source, [record(1)])
    page.goto(live_server.url + reverse("tasks:list"))

    page.select_option("#language", "zh-hans")

    page.wait_for_selector("html[lang=zh-hans]")
    assert page.locator("h1").inner_text() == "任务"
    nav = ["概览", "任务", "图库", "合集", "账号", "用量", "告警", "管理后台"]
    assert page.locator("nav.mainnav").inner_text().split() == nav


def test_a_running_task_reaches_100_percent_without_a_reload(
    page, live_server, start_sim, make_source, clock
):
    # The simulator runs on the test's clock: the task moves a step only when the test
    # moves it; each step is synced (the schedule's light pass) and then waited for on
    # the page, which asks for running rows every 2 s, however long that takes here.
    sim = start_sim("novicezk")
    src = make_source(sim)
    task_id = sim.submit(prompt="灯塔")

    def step_until(done):
        for _ in range(400):  # 200 s of the task's life in half seconds
            record = sim.record(task_id)
            if done(record):
                return record
            clock.advance(0.5)
        raise AssertionError(f"the task never got there: {sim.record(task_id)}")

    def shown(record):
        return record["progress"].rstrip("%")

    record = step_until(lambda r: r["status"] == "IN_PROGRESS")
    sync_source(src)
    task = Task.objects.get(task_id=task_id)
    assert task.status == "IN_PROGRESS"
    page.goto(live_server.url + reverse("tasks:list"))
    page.evaluate("window.notReloaded = true")
    row = page.locator(f"#task-{task.pk}")
    expect(row.locator("progress")).to_have_attribute("value", shown(record))

    seen = [shown(record)]
    for _ in range(2):  # it moves while we watch: two more steps of progress
        before = record["progress"]
        record = step_until(lambda r, before=before: r["progress"] != before)
        assert record["status"] == "IN_PROGRESS", record
        sync_source(src)
        expect(row.locator("progress")).to_have_attribute("value", shown(record), timeout=30_000)
        seen.append(shown(record))
    step_until(lambda r: r["status"] == "SUCCESS")
    sync_source(src)
    expect(row.locator(".badge")).to_have_text("SUCCESS", timeout=30_000)

    expect(row.locator("progress")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    assert len(set(seen)) == 3, seen
    # The detail page of a finished task no longer polls.
    page.goto(live_server.url + task.get_absolute_url())
    assert page.locator("#live[hx-trigger]").count() == 0


# The page's images that loaded, and those that failed (lazy ones not asked for yet are
# neither: not "complete").
IMAGES = """() => {
  const done = [...document.images].filter((img) => img.getAttribute("src") && img.complete);
  return {
    loaded: done.filter((img) => img.naturalWidth > 0).length,
    broken: done.filter((img) => img.naturalWidth === 0).map((img) => img.src),
  };
}"""


def test_a_month_of_history_shows_on_every_page_with_no_broken_image(
    page, live_server, start_sim, make_source, tmp_path
):
    # Realistic data: a month of simulated history whose image links still live. The same
    # run makes the README's screenshots: with MJ_SCREENSHOTS=1 it writes them to
    # docs/screenshots, otherwise to a temporary directory.
    shots_dir = SCREENSHOTS if os.getenv("MJ_SCREENSHOTS") else tmp_path
    sim = start_sim("novicezk", tasks=400, clock=None, speed=4, image_ttl=60 * 86400)
    src = make_source(sim, name="main")
    sync_source(src, full=True)
    # Logging in opened the overview before the sync; the roll-up re-rolls the hours the
    # sync wrote on the qcluster's next refresh (the page itself does so once a minute).
    rollup.refresh()
    shots_dir.mkdir(parents=True, exist_ok=True)
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
        page.wait_for_function("() => window.scrollY === 0")
        images = page.evaluate(IMAGES)
        assert images["loaded"] > 0 and images["broken"] == [], (name, images)
        page.screenshot(path=shots_dir / f"{name}.png", full_page=name != "list")
    page.goto(live_server.url + reverse("tasks:list"))
    page.locator("a.thumb").first.click()
    large = page.locator("#lightbox img")
    large.wait_for(state="visible")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=large.element_handle()
    )
    page.screenshot(path=shots_dir / "lightbox.png")
    for name in [*shots, "lightbox"]:
        assert (shots_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
