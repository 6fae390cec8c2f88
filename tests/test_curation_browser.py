"""Curation in a real browser (headless Debian Chromium via Playwright): keys in the
lightbox, a shift-click selection into a collection, its share link seen with no session,
revoked and expired. With MJ_SCREENSHOTS=1 it writes README's collection and shared-page
screenshots to docs/screenshots/."""

import hashlib
import io
import os
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from tasks.curation import sharing
from tasks.models import Collection, Favourite, ImageState, ShareLink, Source, TaskTag
from tests import test_browser
from tests.conftest import make_task
from tests.test_browser import PASSWORD, SCREENSHOTS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
page = test_browser.page  # the logged-in page, shared with test_browser.py

COLOURS = [(231, 111, 81), (42, 157, 143), (233, 196, 106), (38, 70, 83), (244, 162, 97)]
PROMPTS = ["a lighthouse at dusk", "koi in a moonlit pond", "a desert city at noon",
           "a fox in fresh snow", "paper boats on a canal"]  # fmt: skip


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def tasks(media):
    """Five finished tasks whose images are archived (originals and thumbnails)."""
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret="s3cret")
    made = []
    now = timezone.now()
    for n, (colour, prompt) in enumerate(zip(COLOURS, PROMPTS, strict=True)):
        task = make_task(
            source,
            task_id=f"17000000000000{n:02d}",
            prompt=prompt,
            submitted=now - timedelta(minutes=n),
            caller="caller-secret-id",
        )
        original = png(colour, 640)
        digest = hashlib.sha256(original).hexdigest()
        task.image_file = default_storage.save(
            f"images/{digest[:2]}/{digest[2:]}.png", ContentFile(original)
        )
        thumb = webp(colour)
        digest = hashlib.sha256(thumb).hexdigest()
        task.thumb_file = default_storage.save(
            f"thumbs/{digest[:2]}/{digest[2:]}.webp", ContentFile(thumb)
        )
        task.image_url = f"https://cdn.discordapp.com/attachments/1/2/{n}.png"
        task.archived_url = task.image_url
        task.image_state = ImageState.ARCHIVED
        task.image_width = task.image_height = 640
        task.image_bytes = len(original)
        task.save()
        made.append(task)
    return made


def png(colour, size):
    out = io.BytesIO()
    image = Image.new("RGB", (size, size), colour)
    for x in range(size // 4, size // 2):  # a square, so it is not a flat colour
        for y in range(size // 4, size // 2):
            image.putpixel((x, y), (255, 255, 255))
    image.save(out, "PNG")
    return out.getvalue()


def webp(colour):
    out = io.BytesIO()
    Image.new("RGB", (320, 320), colour).save(out, "WEBP")
    return out.getvalue()


def test_a_person_favourites_and_tags_from_the_lightbox_by_keyboard_alone(page, live_server, tasks):
    page.goto(live_server.url + reverse("tasks:gallery"))
    expect(page.locator("figure.card .marks .star").first).to_be_visible()  # marks drawn
    page.keyboard.press("ArrowRight")  # the first card takes the focus
    page.keyboard.press("ArrowRight")  # the second
    page.keyboard.press("Enter")  # opens it large
    expect(page.locator("#lightbox")).to_be_visible()
    star = page.locator("#lightbox .lb-marks .star")
    expect(star).to_have_attribute("aria-pressed", "false")

    page.keyboard.press("f")
    expect(star).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("t")
    dialog = page.locator("#tag-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.type("golden hour")
    page.keyboard.press("Enter")
    expect(page.locator("#lightbox .lb-marks .tag")).to_have_text("#golden hour")
    page.keyboard.press("ArrowRight")  # on to the third: its own marks
    expect(page.locator("#lightbox .lb-marks .star")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("?")
    expect(page.locator("#keys-dialog")).to_be_visible()
    page.keyboard.press("Escape")  # closes the help
    expect(page.locator("#keys-dialog")).to_be_hidden()
    page.keyboard.press("Escape")  # closes the lightbox
    expect(page.locator("#lightbox")).to_be_hidden()

    second = tasks[1]
    assert list(Favourite.objects.values_list("task_id", flat=True)) == [second.pk]
    assert list(TaskTag.objects.values_list("task_id", "tag__name")) == [(second.pk, "golden hour")]
    # The gallery filtered by the star and the tag finds it.
    page.goto(live_server.url + reverse("tasks:gallery") + "?favourite=1&tag=golden+hour")
    expect(page.locator("figure.card a.task-id")).to_have_text([second.task_id])


def test_a_collection_from_a_shift_click_selection_is_shared_revoked_and_expires(
    page, browser, live_server, tasks
):
    shots = SCREENSHOTS if os.getenv("MJ_SCREENSHOTS") else None
    page.goto(live_server.url + reverse("tasks:gallery"))
    ticks = page.locator("figure.card input.select-task")
    expect(ticks).to_have_count(5)
    ticks.nth(0).click()
    ticks.nth(3).click(modifiers=["Shift"])
    expect(page.locator("#selection-bar [data-count]")).to_have_text("4")
    page.click("#selection-bar [data-act=collect]")
    page.fill("#collect-dialog input[name=new_collection]", "Lookbook for the client")
    page.click("#collect-dialog button[value=collect]")
    link = page.locator("#selection-bar a.collection-link")
    expect(link).to_be_visible()
    collection = Collection.objects.get(name="Lookbook for the client")
    assert list(collection.items.order_by("position").values_list("task_id", flat=True)) == [
        t.pk for t in tasks[:4]
    ]

    link.click()
    page.wait_for_url(re.compile(r"/collections/\d+/$"))
    expect(page.locator(".collection-items figure.card")).to_have_count(4)
    if shots:
        page.screenshot(path=shots / "collection.png", full_page=True)
    page.click("summary:has-text('Share this collection')")
    page.uncheck(".share-panel input[value=action]")
    page.click(".share-panel button:has-text('Make a share link')")
    page.wait_for_url(re.compile(r"/shares/"))
    url = page.locator("input.share-url").input_value()
    assert "/s/" in url

    stranger = browser.new_context(viewport={"width": 1100, "height": 900})
    try:
        shared = stranger.new_page()
        response = shared.goto(url)
        assert response.status == 200
        expect(shared.locator(".shared-item")).to_have_count(4)
        expect(shared.locator(".shared-item img").first).to_be_visible()
        first = shared.locator(".shared-item img").first
        shared.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
        )
        html = shared.content()
        for hidden in ("IMAGINE", "caller-secret-id", "s3cret", "127.0.0.1:9", "cdn.discordapp",
                       PROMPTS[4], "/media/", "Log out"):  # fmt: skip
            assert hidden not in html, hidden
        assert PROMPTS[0] in html
        if shots:
            shared.screenshot(path=shots / "shared.png", full_page=True)
        assert ShareLink.objects.get().views == 1

        page.click("button.revoke")
        expect(page.locator(".share-row .state")).to_have_text("revoked")
        assert shared.goto(url).status == 404

        creator = ShareLink.objects.get().created_by
        expiring = sharing.create(creator, collection=collection, days=1, fields=["prompt"])
        later = live_server.url + sharing.path_of(expiring)
        assert shared.goto(later).status == 200
        ShareLink.objects.filter(pk=expiring.pk).update(expires=timezone.now())
        assert shared.goto(later).status == 404
        expect(shared.locator("h1")).to_have_text("This link has expired")
    finally:
        stranger.close()


def test_a_phone_favourites_by_touch_and_selects_all_on_the_page(
    browser, live_server, tasks, django_user_model
):
    django_user_model.objects.create_user("phone", password=PASSWORD)
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="en-US"
    )
    try:
        page = phone.new_page()
        page.goto(live_server.url + reverse("login"))
        page.fill("#id_username", "phone")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/")
        page.goto(live_server.url + reverse("tasks:list"))
        star = page.locator("tr.task-row .star").first
        star.tap()
        expect(page.locator("tr.task-row .star").first).to_have_attribute("aria-pressed", "true")
        page.locator("#selection-tools input[data-act=all]").tap()
        expect(page.locator("#selection-bar [data-count]")).to_have_text("5")
        assert Favourite.objects.filter(user__username="phone").count() == 1
    finally:
        phone.close()
