"""Grids and videos: the media list read from a record, and the archive of every picture
and video of a task over real HTTP against the simulator's trueai flavor (and a fault
server for hostile answers), served with range requests to logged-in users only."""

import io
import json
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.archive.display import media_url
from tasks.archive.passes import archive_pass
from tasks.ingest.media_list import media_of
from tasks.ingest.sync import sync_source
from tasks.models import ImageState, Source, Task, TaskMedia
from tasks.simulator.videos import video_bytes
from tests.conftest import make_task
from tests.faultserver import Reply
from tests.test_archive import ImageSources, media, png  # noqa: F401  (media: autouse)

pytestmark = pytest.mark.django_db

JOB = "0b7c9e4f-1a2d-4c3e-9f8a-6d5e4c3b2a19"
VJOB = "5c1e0d2a-7b9f-4e11-a3c4-0f6b2d8e9a10"


def grid_record():
    """FACTS-2 §2.6, example 2 (the fields this reads)."""
    cdn = f"https://cdn.midjourney.com/{JOB}"
    return {
        "id": "1754380000123457",
        "action": "IMAGINE",
        "imageUrl": "https://cdn.discordapp.example.invalid/attachments/1/3/grid_0.png",
        "imageUrls": [
            {"url": f"{cdn}/0_{i}.png", "thumbnail": f"{cdn}/0_{i}_640_N.webp"} for i in range(4)
        ],
        "videoUrls": None,
        "videoUrl": None,
        "videoDuration": None,
        "contentType": "image/png",
    }


def video_record():
    """FACTS-2 §2.6, example 1: imageUrls repeats the mp4 links of videoUrls."""
    discord = "https://cdn.discordapp.example.invalid/attachments/1/2/video.mp4"
    videos = [
        {
            "url": f"https://cdn.midjourney.com/video/{VJOB}/0_{i}.mp4",
            "thumbnail": f"https://cdn.midjourney.com/{VJOB}/0_{i}_640_N.webp",
        }
        for i in range(2)
    ]
    return {
        "id": "1754380000123456",
        "action": "VIDEO",
        "imageUrl": discord,
        "imageUrls": videos,
        "contentType": "video/mp4",
        "videoDuration": 5,
        "frameCount": 121,
        "videoUrl": discord,
        "videoUrls": videos,
        "videoType": "vid_1.1_i2v_480",
    }


# The media list


def test_a_trueai_grid_lists_its_four_pictures_with_their_thumbnails():
    listed, is_video, duration = media_of(grid_record())

    assert [m["kind"] for m in listed] == ["image"] * 4
    assert listed[2] == {
        "kind": "image",
        "url": f"https://cdn.midjourney.com/{JOB}/0_2.png",
        "thumbnail": f"https://cdn.midjourney.com/{JOB}/0_2_640_N.webp",
    }
    assert (is_video, duration) == (False, None)


def test_a_trueai_video_lists_each_mp4_once_and_not_as_a_picture():
    listed, is_video, duration = media_of(video_record())

    assert [(m["kind"], m["url"][-8:]) for m in listed] == [
        ("video", "/0_0.mp4"),
        ("video", "/0_1.mp4"),
    ]
    assert listed[0]["thumbnail"].endswith("/0_0_640_N.webp")
    assert (is_video, duration) == (True, 5.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "VIDEO"},
        {"action": "VIDEO_EXTEND"},
        {"contentType": "video/mp4"},
        {"imageUrl": "https://x.example/a/video.MP4?ex=1"},
        {"videoUrl": "https://x.example/a/v.mp4"},
    ],
)
def test_a_record_is_a_video_by_its_action_content_type_or_an_mp4_link(fields):
    assert media_of({"action": "IMAGINE", **fields})[1] is True


def test_new_api_video_links_without_thumbnails_are_listed():
    record = {
        "videoUrl": "https://r.example/v.mp4",
        "videoUrls": [{"url": "https://r.example/2.mp4"}],
    }

    listed, is_video, _ = media_of(record)

    assert listed == [
        {"kind": "video", "url": "https://r.example/2.mp4", "thumbnail": ""},
        {"kind": "video", "url": "https://r.example/v.mp4", "thumbnail": ""},
    ]
    assert is_video


def test_only_http_links_of_a_sane_length_are_kept_and_the_list_is_bounded():
    record = {
        "imageUrls": [
            {"url": "javascript:alert(1)", "thumbnail": "data:image/png;base64,AAAA"},
            {"url": "https://a.example/ok.png", "thumbnail": "file:///etc/passwd"},
            {"url": "https://a.example/x y.png"},
            {"url": "https://a.example/" + "x" * 5000},
            {"url": ["https://a.example/list.png"]},
            "https://a.example/string.png",
            None,
        ]
        + [{"url": f"https://a.example/{i}.png"} for i in range(100)],
        "videoDuration": "NaN",
    }

    listed, is_video, duration = media_of(record)

    assert listed[0] == {"kind": "image", "url": "https://a.example/ok.png", "thumbnail": ""}
    assert len(listed) == 16
    assert all(m["url"].startswith("https://a.example/") and " " not in m["url"] for m in listed)
    assert (is_video, duration) == (False, None)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
MEDIA_KEYS = [
    "imageUrl",
    "imageUrls",
    "videoUrl",
    "videoUrls",
    "videoDuration",
    "contentType",
    "action",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(MEDIA_KEYS), JSON_VALUES) | JSON_VALUES)
def test_any_json_gives_a_media_list_and_never_raises(item):
    listed, is_video, duration = media_of(item)

    assert isinstance(listed, list) and len(listed) <= 16 and isinstance(is_video, bool)
    assert all(m["url"].startswith(("http://", "https://")) for m in listed)
    assert duration is None or duration > 0
    json.dumps(listed)  # storable in the JSON column


# The archive, over real HTTP


def finished(sim, make_source, clock, action="IMAGINE"):
    """A trueai source with one finished task of `action`, synced; (source, task)."""
    task_id = sim.submit(action, prompt="lighthouse at dusk --ar 1:1")
    clock.advance(300)
    source = make_source(sim)
    run = sync_source(source, full=True)
    assert run.outcome == "ok", run.error
    return source, Task.objects.get(source=source, task_id=task_id)


def images_on(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return ImageSources(response.content.decode()).found


def body(response):
    return b"".join(response.streaming_content)


def test_a_trueai_grid_archives_four_originals_and_four_thumbnails_that_outlive_the_links(
    start_sim, make_source, clock, admin_client
):
    sim = start_sim("trueai", image_ttl=600)
    source, task = finished(sim, make_source, clock)
    assert [m["kind"] for m in task.media] == ["image"] * 4
    assert task.image_state == ImageState.PENDING

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.archived == 1 and counts.media.archived == 4
    assert task.image_state == ImageState.ARCHIVED
    copies = list(task.media_copies.order_by("position"))
    assert [(c.position, c.kind, c.state) for c in copies] == [
        (i, "image", ImageState.ARCHIVED) for i in range(4)
    ]
    assert len({c.sha256 for c in copies}) == 4  # four different pictures
    clock.advance(700)  # every link of the simulator is dead now
    assert requests.get(task.media[0]["url"], timeout=5).status_code == 404
    for copy, entry in zip(copies, task.media, strict=True):
        assert copy.url == entry["url"]
        assert copy.file.startswith("images/") and copy.file.endswith(".png")
        original = admin_client.get(media_url(copy.file))
        assert original.status_code == 200 and original["Content-Type"] == "image/png"
        assert len(body(original)) == copy.bytes
        thumb = admin_client.get(media_url(copy.thumb_file))
        with Image.open(io.BytesIO(body(thumb))) as img:
            assert img.format == "WEBP" and max(img.size) == 320

    # The detail page: each picture its own <img> of the copy, each in the lightbox.
    shown = images_on(admin_client, task.get_absolute_url())
    for copy in copies:
        assert media_url(copy.thumb_file) in shown and media_url(copy.file) in shown
    assert all(src.startswith("/media/") for src in shown), shown
    # The gallery: the grid's first picture, with a "4" badge.
    gallery = admin_client.get(reverse("tasks:gallery")).content.decode()
    assert media_url(copies[0].thumb_file) in ImageSources(gallery).found
    assert '<span class="media-badge"' in gallery and ">4</span>" in gallery


def test_a_video_task_archives_its_mp4_and_a_poster_and_plays_after_the_links_die(
    start_sim, make_source, clock, admin_client
):
    sim = start_sim("trueai", image_ttl=600)
    source, task = finished(sim, make_source, clock, action="VIDEO")
    assert task.is_video and task.video_duration == 3
    assert [m["kind"] for m in task.media] == ["video"]

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.archived == 1 and counts.media.archived == 1, counts
    # image_url is itself the MP4: archived as a video, its poster as the thumbnail.
    assert task.image_state == ImageState.ARCHIVED
    assert task.image_file.startswith("videos/") and task.image_file.endswith(".mp4")
    assert task.image_type == "video/mp4"
    (copy,) = task.media_copies.all()
    assert (copy.kind, copy.mime, copy.duration) == ("video", "video/mp4", 3.0)
    clock.advance(700)
    assert requests.get(task.image_url, timeout=5).status_code == 404
    for name, poster in ((task.image_file, task.thumb_file), (copy.file, copy.thumb_file)):
        mp4 = body(admin_client.get(media_url(name)))
        assert mp4[4:8] == b"ftyp"
        with Image.open(io.BytesIO(body(admin_client.get(media_url(poster))))) as img:
            img.load()
            assert img.format == "WEBP" and img.size == (256, 256)

    page = admin_client.get(task.get_absolute_url()).content.decode()
    assert (
        '<video class="media-video" controls preload="metadata" '
        f'src="{media_url(task.image_file)}" poster="{media_url(task.thumb_file)}"' in page
    )
    assert f'src="{media_url(copy.file)}" poster="{media_url(copy.thumb_file)}"' in page
    gallery = admin_client.get(reverse("tasks:gallery")).content.decode()
    assert media_url(task.thumb_file) in gallery and "▶ 0:03" in gallery


def archived_video(admin_client, start_sim, make_source, clock):
    sim = start_sim("trueai", image_ttl=600)
    _, task = finished(sim, make_source, clock, action="VIDEO")
    archive_pass()
    task.refresh_from_db()
    return media_url(task.image_file), task.image_bytes


def test_an_archived_video_answers_range_requests(start_sim, make_source, clock, admin_client):
    url, size = archived_video(admin_client, start_sim, make_source, clock)
    whole = body(admin_client.get(url))
    assert len(whole) == size

    part = admin_client.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{size}"
    assert part["Accept-Ranges"] == "bytes" and part["Content-Length"] == "100"
    assert body(part) == whole[100:200]
    tail = admin_client.get(url, HTTP_RANGE="bytes=-10")
    assert (tail.status_code, body(tail)) == (206, whole[-10:])
    rest = admin_client.get(url, HTTP_RANGE=f"bytes={size - 5}-")
    assert (rest.status_code, body(rest)) == (206, whole[-5:])
    beyond = admin_client.get(url, HTTP_RANGE=f"bytes={size}-{size + 10}")
    assert beyond.status_code == 416 and beyond["Content-Range"] == f"bytes */{size}"
    stale = admin_client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"another"')
    assert stale.status_code == 200 and body(stale) == whole
    for odd in (
        "bytes=5-2",
        "bytes=0-1,4-5",
        "items=0-9",
        "bytes=-",
        "bytes=x-y",
        "\x00",
        "bytes=99999999999999999999-",
    ):
        response = admin_client.get(url, HTTP_RANGE=odd)
        assert response.status_code in (200, 206, 416), odd
        if response.status_code == 200:
            assert body(response) == whole


def test_archived_videos_are_for_logged_in_users_viewers_included(
    start_sim, make_source, clock, admin_client, client, django_user_model
):
    url, _ = archived_video(admin_client, start_sim, make_source, clock)

    anonymous = client.get(url, HTTP_RANGE="bytes=0-9")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    viewer = django_user_model.objects.create_user("vera")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    assert client.get(url, HTTP_RANGE="bytes=0-9").status_code == 206
    assert client.post(url).status_code == 405  # reading only


def fault_task(fault_server, media_entries, image_reply=None, is_video=False, **fields):
    source = Source.objects.create(name="faults", base_url=fault_server.url)
    fault_server.route(
        "GET", "/main.png", image_reply or Reply(body=png(), headers={"Content-Type": "image/png"})
    )
    entries = [
        {"kind": kind, "url": f"{fault_server.url}{path}", "thumbnail": ""}
        for kind, path in media_entries
    ]
    return make_task(
        source,
        image_url=f"{fault_server.url}/main.png",
        image_state=ImageState.PENDING,
        image_expires=timezone.now() + timedelta(hours=20),
        media=entries,
        is_video=is_video,
        **fields,
    )


def test_bytes_that_are_neither_an_image_nor_a_video_are_refused(fault_server):
    fault_server.route(
        "GET", "/page.png", Reply(body=b"<html>hello</html>", headers={"Content-Type": "image/png"})
    )
    fake = b"\x00\x00\x00\x18ftypisom" + b"\x00garbage" * 50
    fault_server.route("GET", "/fake.mp4", Reply(body=fake, headers={"Content-Type": "video/mp4"}))
    task = fault_task(fault_server, [("image", "/page.png"), ("video", "/fake.mp4")])

    archive_pass()
    Task.objects.filter(pk=task.pk).update(image_next_try=None)  # the retries, now
    for _ in range(3):
        archive_pass()
        Task.objects.filter(pk=task.pk).update(image_next_try=None)

    task.refresh_from_db()
    page, fake_copy = task.media_copies.order_by("position")
    assert page.state == ImageState.FAILED and page.file == ""
    assert page.error == "not an image (image/png, 18 bytes)"  # quotes no byte of it
    assert fake_copy.state == ImageState.FAILED and fake_copy.error.startswith("broken video")
    assert task.image_state == ImageState.ARCHIVED  # its own image was fine


def test_an_mp4_over_the_video_limit_is_refused(fault_server, settings):
    mp4 = video_bytes("big_video_0_0.mp4")
    settings.MJ_ARCHIVE_MAX_VIDEO_MB = (len(mp4) - 1) / 1024 / 1024
    fault_server.route("GET", "/big.mp4", Reply(body=mp4, headers={"Content-Type": "video/mp4"}))
    fault_server.route("GET", "/ok.mp4", Reply(body=mp4, headers={}))
    task = fault_task(fault_server, [("video", "/big.mp4"), ("image", "/ok.mp4")])

    archive_pass()

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED  # refusals are final: nothing to retry
    big, as_image = task.media_copies.order_by("position")
    assert big.state == ImageState.FAILED and big.error.startswith("too large")
    # Listed as a picture, fetched under the image limit: its bytes still make it a video.
    assert as_image.state == ImageState.FAILED and "limit for a video" in as_image.error


def test_a_media_entry_failing_for_now_keeps_its_task_pending_until_it_is_copied(fault_server):
    fault_server.route("GET", "/a.png", Reply(status=503, body=b"busy"))
    fault_server.route(
        "GET", "/b.png", Reply(body=png((40, 40)), headers={"Content-Type": "image/png"})
    )
    task = fault_task(fault_server, [("image", "/a.png"), ("image", "/b.png")])

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.retrying == 1 and counts.archived == 0
    assert task.image_state == ImageState.PENDING and task.image_attempts == 1
    assert task.image_file and task.archived_url == task.image_url  # copied, kept
    states = dict(task.media_copies.values_list("position", "state"))
    assert states == {0: ImageState.PENDING, 1: ImageState.ARCHIVED}

    fault_server.route(
        "GET", "/a.png", Reply(body=png((30, 30)), headers={"Content-Type": "image/png"})
    )
    fault_server.requests.clear()
    Task.objects.filter(pk=task.pk).update(image_next_try=None)  # the retry is due
    counts = archive_pass()

    task.refresh_from_db()
    assert counts.archived == 1 and counts.media.archived == 1
    assert task.image_state == ImageState.ARCHIVED
    assert set(task.media_copies.values_list("state", flat=True)) == {ImageState.ARCHIVED}
    assert [path for _, path, *_ in fault_server.requests] == ["/a.png"]  # nothing twice


def test_purging_a_task_deletes_its_media_files_unless_another_task_uses_them(
    fault_server, settings
):
    root = settings.MEDIA_ROOT
    fault_server.route(
        "GET", "/a.png", Reply(body=png((40, 40)), headers={"Content-Type": "image/png"})
    )
    fault_server.route(
        "GET", "/b.png", Reply(body=png((50, 50)), headers={"Content-Type": "image/png"})
    )
    old = fault_task(fault_server, [("image", "/a.png"), ("image", "/b.png")])
    Task.objects.filter(pk=old.pk).update(submitted=timezone.now() - timedelta(days=400))
    keeper = make_task(old.source, task_id="2", image_url="", submitted=timezone.now())
    archive_pass()
    a, b = old.media_copies.order_by("position")
    TaskMedia.objects.create(
        task=keeper, position=0, kind="image", url="x", file=a.file, thumb_file=a.thumb_file
    )

    call_command("purge_tasks", "--older-than", "365", stdout=io.StringIO())

    assert not TaskMedia.objects.filter(task_id=old.pk).exists()
    assert (root / a.file).exists() and (root / a.thumb_file).exists()  # still used
    assert not (root / b.file).exists() and not (root / b.thumb_file).exists()


def test_a_task_whose_image_link_died_still_gets_its_media_copied(fault_server):
    fault_server.route(
        "GET", "/a.png", Reply(body=png((40, 40)), headers={"Content-Type": "image/png"})
    )
    task = fault_task(fault_server, [("image", "/a.png")], Reply(status=404, body=b"gone"))
    Task.objects.filter(pk=task.pk).update(image_expires=timezone.now() - timedelta(minutes=1))

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.lost == 1 and counts.media.archived == 1
    assert task.image_state == ImageState.LOST and task.image_file == ""
    assert task.media_copies.get().state == ImageState.ARCHIVED


def test_the_mirror_api_serves_a_grid_task_byte_for_byte(
    start_sim, make_source, clock, admin_client
):
    sim = start_sim("trueai", image_ttl=600)
    source, task = finished(sim, make_source, clock)
    archive_pass()

    response = admin_client.get(f"/mj/task/{task.task_id}/fetch")

    assert response.status_code == 200
    assert response.content.decode() == task.raw
    assert len(response.json()["imageUrls"]) == 4


def test_media_links_are_shown_only_if_http_and_always_escaped(admin_client):
    source = Source.objects.create(name="odd", base_url="http://127.0.0.1:9")
    evil = 'https://x.example/a.png?q="><script>alert(1)</script>'
    task = make_task(
        source,
        media=[
            {"kind": "image", "url": evil, "thumbnail": "javascript:alert(1)"},
            {"kind": "video", "url": "data:video/mp4;base64,AAAA", "thumbnail": ""},
        ],
    )

    page = admin_client.get(task.get_absolute_url()).content.decode()

    assert "<script>alert(1)" not in page and "javascript:alert" not in page
    assert "data:video" not in page
    assert 'href="https://x.example/a.png?q=&quot;&gt;&lt;script&gt;' in page
    assert "#2: the link expired before it could be copied" in page
