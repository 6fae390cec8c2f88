"""Grids and videos in a real browser (Debian's Chromium, as tests/test_browser.py): the
archived MP4 plays on the detail page, and each picture of a grid opens in the lightbox,
after the simulator's links have died. With MJ_SCREENSHOTS=1 this writes the README's
screenshots of both detail pages to docs/screenshots."""

import os

import pytest
from playwright.sync_api import expect

from tasks.archive.display import media_url
from tasks.archive.passes import archive_pass
from tasks.ingest.sync import sync_source
from tasks.models import ImageState, Task
from tests.test_archive import media  # noqa: F401  (autouse: a MEDIA_ROOT of the test's own)
from tests.test_browser import SCREENSHOTS, page  # noqa: F401  (the logged-in page fixture)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def archived(start_sim, make_source, clock):
    """A trueai source with a finished grid and a finished video, archived, whose links
    have all died since: (grid task, video task)."""
    sim = start_sim("trueai", image_ttl=600)
    grid_id = sim.submit("IMAGINE", prompt="lighthouse at dusk, watercolor --ar 1:1")
    video_id = sim.submit("VIDEO", prompt="a paper boat drifting on a pond --video 1")
    clock.advance(300)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == "ok"
    counts = archive_pass()
    assert counts.archived == 2 and counts.media.archived == 5, counts
    clock.advance(700)
    tasks = Task.objects.filter(source=source)
    return tasks.get(task_id=grid_id), tasks.get(task_id=video_id)


def screenshot_dir(tmp_path):
    folder = SCREENSHOTS if os.getenv("MJ_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_archived_video_plays_on_the_detail_page(page, live_server, archived, tmp_path):  # noqa: F811
    _, video = archived
    assert video.image_state == ImageState.ARCHIVED

    page.goto(live_server.url + video.get_absolute_url())

    player = page.locator(".detail-image video").first
    assert player.get_attribute("src") == media_url(video.image_file)
    assert player.get_attribute("poster") == media_url(video.thumb_file)
    assert player.get_attribute("preload") == "metadata"
    page.wait_for_function("v => v.readyState >= 1 && v.duration > 2", arg=player.element_handle())
    page.screenshot(path=screenshot_dir(tmp_path) / "detail-video.png", full_page=True)
    # Muted, as a page may start a video without a click; the time must move.
    page.evaluate("v => { v.muted = true; return v.play(); }", player.element_handle())
    page.wait_for_function("v => v.currentTime > 0.5", arg=player.element_handle())
    # Seeking asks for a range of the file; the archive answers it.
    page.evaluate("v => { v.currentTime = 2.5; }", player.element_handle())
    page.wait_for_function("v => !v.seeking && v.currentTime >= 2.5", arg=player.element_handle())
    assert page.evaluate("v => v.error", player.element_handle()) is None


def test_each_picture_of_a_grid_shows_and_opens_in_the_lightbox(
    page,  # noqa: F811
    live_server,
    archived,
    tmp_path,
):
    grid, _ = archived
    copies = list(grid.media_copies.order_by("position"))

    page.goto(live_server.url + grid.get_absolute_url())

    pictures = page.locator(".media-grid a[data-lightbox] img")
    expect(pictures).to_have_count(4)
    for i, copy in enumerate(copies):
        img = pictures.nth(i)
        assert img.get_attribute("src") == media_url(copy.thumb_file)
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    page.screenshot(path=screenshot_dir(tmp_path) / "detail-grid.png", full_page=True)

    pictures.nth(2).click()

    box = page.locator("#lightbox")
    expect(box).to_be_visible()
    expect(box.locator("img")).to_have_attribute("src", media_url(copies[2].file))
    page.wait_for_function(
        "() => { const i = document.querySelector('#lightbox img'); "
        "return i.complete && i.naturalWidth === 512; }"
    )
