"""The image archive, over real HTTP: the simulator's Discord-shaped links, and a fault
server for hostile answers."""

import hashlib
import io
import re
import socket
import struct
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.cache import cache
from django.core.files.storage import InMemoryStorage, default_storage, storages
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from tasks.archive import display as image_urls
from tasks.archive import passes as archive
from tasks.archive.display import image_lost, large_url, thumb_size, thumb_url
from tasks.archive.fetch import Fetcher, FetchError, Policy, Refused, resolve_origin
from tasks.archive.passes import archive_pass, due
from tasks.archive.status import status_counts
from tasks.bootstrap import ensure_schedules
from tasks.ingest.sync import ingest, sync_source
from tasks.models import ImageState, Source, SourceKind, Task, TaskMedia
from tests.conftest import make_task
from tests.faultserver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MJ_ARCHIVE_TIMEOUT = 2
    settings.MJ_ARCHIVE_DEADLINE = 10
    settings.MJ_THUMBS_ONLY_AFTER_DAYS = 0
    settings.MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS = ""
    return settings.MEDIA_ROOT


@pytest.fixture
def no_connect_to(monkeypatch):
    """Fails the test if anything opens a socket to one of the given addresses."""
    forbidden = set()
    attempts = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        attempts.append(address)
        if address[0] in forbidden:
            raise AssertionError(f"connected to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

    def forbid(*addresses):
        forbidden.update(addresses)
        return attempts

    return forbid


def png(size=(64, 48), colour=(200, 40, 40)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def png_reply(data=None):
    return Reply(200, data or png(), {"Content-Type": "image/png"})


def bomb_png(side):
    """A real PNG of side x side black 1-bit pixels: a few hundred KB that decode to GBs."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def source_at(url, name="faults", **fields):
    return Source.objects.create(name=name, base_url=url, **fields)


def pending(source, url, task_id="1700000000000001", **fields):
    fields.setdefault("image_expires", timezone.now() + timedelta(hours=20))
    fields.setdefault("image_state", ImageState.PENDING)
    return make_task(source, task_id=task_id, image_url=url, **fields)


def media_files(media):
    """The images and thumbnails in MEDIA_ROOT."""
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def stored(name):
    with default_storage.open(name, "rb") as f:
        return f.read()


def until(clock, sim, task_id, test, step=1.0, limit=200):
    for _ in range(int(limit / step)):
        record = sim.record(task_id)
        if test(record):
            return record
        clock.advance(step)
    raise AssertionError(f"task {task_id} never got there: {sim.record(task_id)}")


class StreamServer:
    """Answers the fault server cannot give: an endless chunked body, a slow drip."""

    def __init__(self):
        self.sent = 0  # bytes of the endless body written
        self.dripped = 0  # bytes of the drip written
        self.hung_up = threading.Event()  # the client closed the connection mid-body
        self.done = threading.Event()  # a handler is over, one way or the other

        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    if self.path == "/endless.png":
                        self.send_response(200)
                        self.send_header("Content-Type", "image/png")
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        piece = png() + b"\x00" * 65536
                        for _ in range(2000):  # 130 MB at most
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                            outer.sent += len(piece)
                    elif self.path == "/drip.png":
                        self.send_response(200)
                        self.send_header("Content-Type", "image/png")
                        self.send_header("Content-Length", "1000")
                        self.end_headers()
                        for _ in range(1000):  # 50 s at least
                            self.wfile.write(b"\x00")
                            self.wfile.flush()
                            outer.dripped += 1
                            time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    outer.hung_up.set()
                finally:
                    outer.done.set()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stream_server():
    server = StreamServer()
    yield server
    server.stop()


# Against the simulator


class ImageSources(HTMLParser):
    """Every image a page shows: <img src>, and the full-size links the lightbox opens."""

    def __init__(self, html):
        super().__init__()
        self.found = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and "src" in attrs and not attrs["src"].startswith("/static/"):
            self.found.append(attrs["src"] or "")  # (the lightbox's own <img> has no src)
        elif tag == "a" and "data-lightbox" in attrs:
            self.found.append(attrs.get("href") or "")


def shown_images(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return ImageSources(response.content.decode()).found


def synced_source(sim, make_source, flavor):
    if flavor != "relay":
        source = make_source(sim)
    else:
        # A relay has no list: the mirror learns its ids elsewhere (hooks, an older proxy),
        # then refreshes them through list-by-condition.
        source = make_source(sim, kind=SourceKind.RELAY)
        ingest(source, [dict(r, status="SUBMITTED", progress="0%") for r in sim.all_records()])
    assert sync_source(source, full=True).outcome == "ok"
    return source


@pytest.mark.parametrize("flavor", ["novicezk", "trueai", "relay"])
def test_every_finished_image_is_archived_before_its_link_dies_and_served_after_it(
    start_sim, make_source, clock, flavor, client, admin_client, django_user_model
):
    sim = start_sim(flavor, tasks=0, image_ttl=600)
    for action in ("IMAGINE", "IMAGINE", "DESCRIBE", "BLEND", "SHORTEN"):
        sim.submit(action, prompt="灯塔 at dusk")
    sim.submit("IMAGINE", prompt="a failing cat", fail=True)
    sim.submit("UPSCALE")
    clock.advance(150)  # every task has finished
    source = synced_source(sim, make_source, flavor)
    with_images = Task.objects.filter(source=source).exclude(image_url="")
    assert with_images.count() >= 5
    assert set(with_images.values_list("image_state", flat=True)) == {ImageState.PENDING}

    counts = archive_pass()

    assert counts.archived == with_images.count()
    assert counts.failed == counts.lost == counts.retrying == 0
    clock.advance(700)  # every link is dead now
    for task in with_images.all():
        assert requests.get(task.image_url, timeout=5).status_code == 404
        assert task.image_state == ImageState.ARCHIVED
        assert task.archived_url == task.image_url
        assert task.image_file.startswith("images/") and task.image_file.endswith(".png")
        assert task.thumb_file.startswith("thumbs/") and task.thumb_file.endswith(".webp")
        assert task.image_type == "image/png"
        assert (task.image_width, task.image_height) == (512, 512)

        original = admin_client.get(large_url(task))
        assert original.status_code == 200
        assert original["Content-Type"] == "image/png"
        assert original["Cache-Control"] == "private, max-age=31536000, immutable"
        body = b"".join(original.streaming_content)
        assert len(body) == task.image_bytes
        assert hashlib.sha256(body).hexdigest() == task.image_sha256
        thumb = admin_client.get(thumb_url(task))
        assert thumb.status_code == 200
        assert thumb["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(b"".join(thumb.streaming_content))) as img:
            assert img.format == "WEBP" and max(img.size) == 320
        assert thumb_size(task) == (320, 320)

        anonymous = client.get(thumb_url(task))
        assert anonymous.status_code == 302
        assert anonymous["Location"].startswith("/accounts/login/")

    # Every page, after the links died: each image is the archived copy, none the proxy's.
    thumbs = {image_urls.media_url(t.thumb_file) for t in with_images.all()}
    pages = {url: shown_images(admin_client, url) for url in ("/", "/tasks/", "/gallery/")}
    pages["/admin/tasks/task/"] = shown_images(admin_client, "/admin/tasks/task/")
    # The gallery shows a grid by its first picture, every other task by its own image.
    firsts = {c.task_id: c.thumb_file for c in TaskMedia.objects.filter(position=0, kind="image")}
    cards = {image_urls.media_url(firsts.get(t.pk, t.thumb_file)) for t in with_images.all()}
    for url, shown in pages.items():
        expected = cards if url == "/gallery/" else thumbs
        assert expected <= set(shown), url  # every task with an image, with its copy
    for task in with_images.all():
        shown = shown_images(admin_client, task.get_absolute_url())
        assert image_urls.media_url(task.image_file) in shown
        pages[task.get_absolute_url()] = shown
    for url, shown in pages.items():
        assert shown, url
        for src in shown:
            assert src.startswith("/media/"), (url, src)
            assert sim.url.split("//")[1] not in src, (url, src)
    reader = django_user_model.objects.create_user("reader")  # logged in, not staff
    client.force_login(reader)
    for src in {src for shown in pages.values() for src in shown}:
        response = client.get(src)
        assert response.status_code == 200, src
        assert b"".join(response.streaming_content)


def test_a_grid_preview_is_archived_then_replaced_by_the_final_image(
    start_sim, make_source, clock, media
):
    sim = start_sim(tasks=0, image_ttl=600)
    task_id = sim.submit("IMAGINE", prompt="山水")
    source = make_source(sim)
    until(clock, sim, task_id, lambda r: "_grid_0" in (r["imageUrl"] or ""))
    sync_source(source)
    archive_pass()
    task = Task.objects.get(task_id=task_id)
    assert task.image_state == ImageState.ARCHIVED
    assert task.image_type == "image/webp"
    preview = (task.image_file, task.thumb_file)
    assert all(name.startswith(f"previews/{task.pk}/") for name in preview)
    assert all(default_storage.exists(name) for name in preview)

    until(clock, sim, task_id, lambda r: r["status"] == "SUCCESS")
    sync_source(source)
    task.refresh_from_db()
    assert task.image_state == ImageState.PENDING  # the sync saw a new URL
    assert thumb_url(task) == task.image_url  # the live final image meanwhile
    archive_pass()

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED
    assert task.image_file.startswith("images/")
    assert not any(default_storage.exists(name) for name in preview)
    assert media_files(media) == sorted([task.image_file, task.thumb_file])


def sim_now(clock):
    return datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


def re_signed(url, signer, issued_ms):
    """The same attachment under a fresh signature (new ex, is and hm), as Discord gives."""
    parts = urlsplit(url)
    _, _, channel, attachment, name = parts.path.split("/")
    return signer.url(f"{parts.scheme}://{parts.netloc}", channel, attachment, name, issued_ms)


def test_a_re_signed_link_that_dies_before_it_is_copied_keeps_the_earlier_copy(
    start_sim, make_source, clock, admin_client
):
    sim = start_sim(tasks=0, image_ttl=600)
    task_id = sim.submit("IMAGINE", prompt="灯塔")
    clock.advance(150)
    source = make_source(sim)
    sync_source(source, full=True)
    archive_pass()
    task = Task.objects.get(task_id=task_id)
    assert task.image_state == ImageState.ARCHIVED
    copy = (task.image_file, task.thumb_file)
    # The proxy hands out a re-signed link: the sync sees a new URL and wants it copied.
    link = re_signed(task.image_url, sim.signer, clock.advance(60))
    assert link != task.image_url and requests.get(link, timeout=5).status_code == 200
    ingest(source, [dict(sim.record(task_id), imageUrl=link)])
    task.refresh_from_db()
    assert (task.image_state, task.image_url) == (ImageState.PENDING, link)
    assert thumb_url(task) == image_urls.media_url(task.thumb_file)  # the same picture
    clock.advance(700)  # the new link dies before any pass comes to it
    assert requests.get(link, timeout=5).status_code == 404

    counts = archive_pass(now=sim_now(clock))

    task.refresh_from_db()
    assert (counts.lost, counts.kept) == (0, 1)
    assert task.image_state == ImageState.ARCHIVED
    assert (task.image_file, task.thumb_file) == copy
    assert task.image_error == "kept the copy of an earlier link: the new link " + archive.LOST
    assert not image_lost(task)
    assert thumb_url(task) == image_urls.media_url(copy[1])
    assert large_url(task) == image_urls.media_url(copy[0])
    assert status_counts()["lost"] == 0
    page = admin_client.get(task.get_absolute_url()).content.decode()
    assert "expired before it could be copied" not in page
    assert image_urls.media_url(copy[0]) in ImageSources(page).found
    assert "image lost" not in admin_client.get("/tasks/").content.decode()


@pytest.fixture
def dies_on_the_way(monkeypatch):
    """dies_on_the_way(reply): a route that answers `reply` after the link it was asked
    for died. The clock mjsite reads (timezone.now) moves on two hours as the request
    arrives, so a link that expires within the hour is alive when a pass claims it and
    dead when the answer comes. (A real wait past an expiry a second away raced a slow
    machine: there the link died before the pass even asked.)"""
    moved = threading.Event()
    real_now = timezone.now

    def now():
        return real_now() + (timedelta(hours=2) if moved.is_set() else timedelta(0))

    monkeypatch.setattr(timezone, "now", now)

    def route(reply):
        def answer(body):
            moved.set()
            return reply

        return answer

    return route


@pytest.mark.parametrize(
    "answer, reason",
    [
        (Reply(404, b"gone", {}), "HTTP 404"),
        (Reply(200, b"", {}, declared_length=10 * 1024**3), "too large"),
    ],
)
def test_a_new_link_that_fails_for_good_keeps_the_earlier_copy(
    fault_server, dies_on_the_way, answer, reason
):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/a.png", png_reply())
    task = pending(source, f"{fault_server.url}/a.png")
    archive_pass()
    task.refresh_from_db()
    copy = (task.image_file, task.thumb_file)
    assert task.image_state == ImageState.ARCHIVED
    # The proxy re-signs the link (same picture, new query); the new link fails, and by
    # the time it answers 404 it has expired: it is gone for good.
    fault_server.route("GET", "/a.png", dies_on_the_way(answer))
    soon = timezone.now() + timedelta(hours=1)
    record = {"id": task.task_id, "status": "SUCCESS", "progress": "100%"}
    ingest(
        source, [dict(record, imageUrl=f"{fault_server.url}/a.png?ex={int(soon.timestamp()):x}&")]
    )
    task.refresh_from_db()
    assert task.image_state == ImageState.PENDING

    counts = archive_pass()

    task.refresh_from_db()
    assert (counts.kept, counts.lost, counts.failed) == (1, 0, 0)
    assert task.image_state == ImageState.ARCHIVED
    assert (task.image_file, task.thumb_file) == copy and default_storage.exists(copy[0])
    assert task.image_error.startswith("kept the copy of an earlier link: the new link")
    assert reason in task.image_error
    assert thumb_url(task) == image_urls.media_url(copy[1]) and not image_lost(task)
    assert len(fault_server.requests_to("/a.png")) == 2  # the first link, then the new one


def test_a_final_image_that_fails_is_not_hidden_behind_the_copy_of_its_preview(fault_server):
    # The grid preview was copied while the task ran; the final image is another picture.
    source = source_at(fault_server.url)
    fault_server.route("GET", "/grid_0.png", png_reply(png(colour=(9, 9, 9))))
    fault_server.route("GET", "/final.png", Reply(200, b"", {}, declared_length=10 * 1024**3))
    task = pending(source, f"{fault_server.url}/grid_0.png")
    archive_pass()
    record = {"id": task.task_id, "status": "SUCCESS", "progress": "100%"}
    ingest(source, [dict(record, imageUrl=f"{fault_server.url}/final.png")])

    counts = archive_pass()

    task.refresh_from_db()
    assert (counts.kept, counts.failed) == (0, 1)
    assert task.image_state == ImageState.FAILED
    # The final image's own link, while it lives, not the preview's copy.
    assert thumb_url(task) == f"{fault_server.url}/final.png"


def test_a_task_marked_lost_before_the_fix_still_shows_its_copy():
    source = source_at("http://127.0.0.1:9")
    names = {"image_file": "images/ab/" + "c" * 62 + ".png", "thumb_file": "thumbs/ab/x.webp"}
    task = pending(source, "https://cdn.discordapp.com/a.png?ex=1&", **names)
    task.image_state = ImageState.LOST
    assert not image_lost(task)
    assert thumb_url(task) == image_urls.media_url(names["thumb_file"])
    assert large_url(task) == image_urls.media_url(names["image_file"])


def test_a_synced_discord_link_expires_when_its_ex_says(start_sim, make_source, clock):
    sim = start_sim(tasks=0)  # links live a day, as Discord's
    task_id = sim.submit("IMAGINE", prompt="猫猫")
    clock.advance(150)
    source = make_source(sim)

    assert sync_source(source, full=True).outcome == "ok"

    task = Task.objects.get(task_id=task_id)
    assert re.fullmatch(
        r"http://[^?]+\.png\?ex=[0-9a-f]+&is=[0-9a-f]+&hm=[0-9a-f]+&", task.image_url
    )
    query = parse_qs(urlsplit(task.image_url).query)
    ex, issued = int(query["ex"][0], 16), int(query["is"][0], 16)
    assert ex - issued == 86400
    assert task.image_expires == datetime.fromtimestamp(ex, tz=UTC)
    # A day after the task finished (is= is the finish time in whole seconds).
    assert abs(task.image_expires - task.finished - timedelta(days=1)) < timedelta(seconds=1)


def test_a_discord_cdn_link_from_the_proxy_expires_at_its_ex():
    source = source_at("https://mj.example.com")
    url = (
        "https://cdn.discordapp.com/attachments/1118138338562560102/1195743014562238534/"
        "cat_0b6c2c44-1fa1-4a5e-9d8e-1a2b3c4d5e6f.png"
        "?ex=65a1b2c3&is=65a06143&hm=3f1e0c2b7a9d8e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f&"
    )
    record = {"id": "1705009475000001", "action": "IMAGINE", "status": "SUCCESS"}

    ingest(source, [dict(record, progress="100%", imageUrl=url)])

    task = Task.objects.get(task_id="1705009475000001")
    assert task.image_url == url
    assert task.image_state == ImageState.PENDING
    assert task.image_expires == datetime(2024, 1, 12, 21, 44, 35, tzinfo=UTC)


def test_a_link_that_dies_before_its_turn_is_lost_without_a_request(fault_server):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/old.png", png_reply())
    task = pending(source, f"{fault_server.url}/old.png", image_expires=timezone.now())

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.lost == 1
    assert task.image_state == ImageState.LOST
    assert "expired before it could be copied" in task.image_error
    assert fault_server.requests == []
    assert image_lost(task)
    assert thumb_url(task) is None and large_url(task) is None


def test_a_link_that_answers_404_once_it_expired_is_lost(fault_server, dies_on_the_way):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/late.png", dies_on_the_way(Reply(404, b"gone", {})))
    expires = timezone.now() + timedelta(hours=1)
    task = pending(source, f"{fault_server.url}/late.png", image_expires=expires)

    counts = archive_pass()

    task.refresh_from_db()
    assert counts.lost == 1
    assert task.image_state == ImageState.LOST
    assert "HTTP 404" in task.image_error  # asked while alive, lost on its answer
    assert len(fault_server.requests_to("/late.png")) == 1


def test_a_404_before_the_expiry_is_retried_with_backoff_then_fails(fault_server):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", Reply(404, b"", {}))
    task = pending(source, f"{fault_server.url}/x.png")
    now = timezone.now()

    for attempt, minutes in enumerate((1, 5, 30), start=1):
        counts = archive_pass(now=now)
        task.refresh_from_db()
        assert counts.retrying == 1
        assert (task.image_state, task.image_attempts) == (ImageState.PENDING, attempt)
        assert task.image_next_try == now + timedelta(minutes=minutes)
        assert archive_pass(now=now + timedelta(seconds=30)).retrying == 0  # not due yet
        now = task.image_next_try

    counts = archive_pass(now=now)
    task.refresh_from_db()
    assert counts.failed == 1
    assert (task.image_state, task.image_attempts) == (ImageState.FAILED, 4)
    assert task.image_error == f"HTTP 404 from {fault_server.url[7:]}"
    assert task.image_next_try is None


# Hostile answers: each refused with a reason, nothing crashing


def run_one(source, url, **fields):
    task = pending(source, url, **fields)
    archive_pass()
    task.refresh_from_db()
    assert task.image_state in (ImageState.PENDING, ImageState.FAILED)
    assert task.image_file == "" and task.image_sha256 == ""
    assert task.image_error
    return task


def test_a_link_that_returns_html_is_not_an_image(fault_server, media):
    source = source_at(fault_server.url)
    page = b"<!doctype html><html><body>Sign in to Discord</body></html>"
    fault_server.route("GET", "/x.png", Reply(200, page, {"Content-Type": "image/png"}))

    task = run_one(source, f"{fault_server.url}/x.png")

    assert task.image_error == f"not an image (image/png, {len(page)} bytes)"  # no body bytes
    assert task.image_state == ImageState.PENDING and task.image_next_try is not None
    assert media_files(media) == []


def test_a_10_gb_content_length_is_refused_before_reading(fault_server):
    source = source_at(fault_server.url)
    huge = Reply(200, b"\x89PNG", {"Content-Type": "image/png"}, declared_length=10 * 1024**3)
    fault_server.route("GET", "/huge.png", huge)

    task = run_one(source, f"{fault_server.url}/huge.png")

    assert task.image_state == ImageState.FAILED
    assert task.image_error == "too large: 10,737,418,240 bytes announced, the limit is 52,428,800"


def test_a_chunked_body_past_the_limit_is_cut_off(stream_server, settings):
    settings.MJ_ARCHIVE_MAX_MB = 1
    source = source_at(stream_server.url)

    task = run_one(source, f"{stream_server.url}/endless.png")

    assert task.image_state == ImageState.FAILED
    assert task.image_error == "too large: more than 1,048,576 bytes"
    # We stopped reading and hung up: the server's next writes failed, long before the
    # 130 MB it would send to a client that reads on.
    assert stream_server.done.wait(60), "the server is still sending"
    assert stream_server.hung_up.is_set()
    assert stream_server.sent < 20 * 1024 * 1024


@pytest.mark.parametrize("target", ["http://10.0.0.1/x.png", "http://169.254.169.254/latest/"])
def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    fault_server, no_connect_to, target
):
    attempts = no_connect_to("10.0.0.1", "169.254.169.254")
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", Reply(302, b"", {"Location": target}))

    task = run_one(source, f"{fault_server.url}/x.png")

    assert task.image_state == ImageState.FAILED
    assert task.image_error.startswith(f"{target.split('/')[2]} resolves to ")
    assert "private" in task.image_error or "link-local" in task.image_error
    assert [a for a in attempts if a[0] != "127.0.0.1"] == []
    assert len(fault_server.requests) == 1


def test_a_redirect_to_a_private_host_name_is_refused_too(fault_server, no_connect_to):
    attempts = no_connect_to("127.0.0.1")
    source = source_at("https://proxy.example.com")
    image = f"http://localhost:{fault_server.url.rsplit(':', 1)[1]}/x.png"

    task = run_one(source, image)

    assert task.image_state == ImageState.FAILED
    assert "localhost resolves to" in task.image_error and "loopback" in task.image_error
    assert attempts == [] and fault_server.requests == []


def test_private_addresses_are_fetched_when_the_source_allows_them(fault_server):
    fault_server.route("GET", "/x.png", png_reply())
    source = source_at("https://proxy.example.com", allow_private_images=True)
    task = pending(source, f"{fault_server.url}/x.png")

    archive_pass()

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED


def test_private_networks_listed_in_the_setting_are_allowed(fault_server, settings):
    settings.MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS = "10.0.0.0/8, 127.0.0.0/8"
    fault_server.route("GET", "/x.png", png_reply())
    source = source_at("https://proxy.example.com")
    task = pending(source, f"{fault_server.url}/x.png")

    archive_pass()

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED


def test_more_than_three_redirects_are_refused(fault_server):
    source = source_at(fault_server.url)
    for n in range(5):
        fault_server.route("GET", f"/r{n}", Reply(302, b"", {"Location": f"/r{n + 1}"}))

    task = run_one(source, f"{fault_server.url}/r0")

    assert task.image_state == ImageState.FAILED
    assert task.image_error == "more than 3 redirects"
    assert len(fault_server.requests) == 4


def test_three_redirects_on_the_same_host_are_followed(fault_server):
    source = source_at(fault_server.url)
    for n in range(3):
        fault_server.route("GET", f"/r{n}", Reply(301, b"", {"Location": f"/r{n + 1}"}))
    fault_server.route("GET", "/r3", png_reply())
    task = pending(source, f"{fault_server.url}/r0")

    archive_pass()

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED
    assert task.archived_url == f"{fault_server.url}/r0"


def test_a_truncated_png_is_a_broken_image(fault_server):
    source = source_at(fault_server.url)
    noisy = io.BytesIO()
    Image.effect_noise((300, 300), 80).save(noisy, "PNG")
    # The server's Content-Length matches: the file itself is cut, not the connection.
    fault_server.route("GET", "/cut.png", png_reply(noisy.getvalue()[:3000]))

    task = run_one(source, f"{fault_server.url}/cut.png")

    assert task.image_error.startswith("broken image")


def test_a_body_that_breaks_off_is_retried(fault_server):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", Reply(200, png(), {}, cut_after=40))

    task = run_one(source, f"{fault_server.url}/x.png")

    assert task.image_state == ImageState.PENDING
    assert task.image_error.startswith("download broke off")


def test_a_server_that_does_not_answer_times_out(fault_server, settings):
    settings.MJ_ARCHIVE_TIMEOUT = 0.5
    source = source_at(fault_server.url)
    # The answer (a good image) comes after a minute: only a timeout ends the wait sooner.
    fault_server.route("GET", "/slow.png", Reply(200, png(), {}, delay=60))

    task = run_one(source, f"{fault_server.url}/slow.png")

    assert task.image_state == ImageState.PENDING  # given up on, to be tried again
    assert task.image_error == "timed out after 0.5 s: " + fault_server.url[7:]
    assert len(fault_server.requests_to("/slow.png")) == 1  # once per pass


def test_a_slow_drip_is_stopped_by_the_deadline(stream_server, settings):
    settings.MJ_ARCHIVE_DEADLINE = 1
    source = source_at(stream_server.url)

    task = run_one(source, f"{stream_server.url}/drip.png")

    assert task.image_error == "download took longer than 1 s"
    # We hung up mid-body, about a second into a drip of a byte per 50 ms or slower: at
    # the deadline (some 20 bytes), not near the end (1,000). Counted in bytes, not
    # seconds: a slow machine drips slower too.
    assert stream_server.done.wait(60), "the server is still dripping"
    assert stream_server.hung_up.is_set()
    assert stream_server.dripped < 200, stream_server.dripped


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.com/x.png", "data:image/png,x"],
)
def test_urls_that_are_not_http_are_never_fetched(fault_server, url):
    source = source_at(fault_server.url)

    task = run_one(source, url)

    assert task.image_state == ImageState.FAILED
    assert task.image_error.startswith("only http and https URLs are fetched")


@pytest.mark.parametrize("side", [8000, 20000])
def test_a_decompression_bomb_is_refused(fault_server, side):
    source = source_at(fault_server.url)
    bomb = bomb_png(side)
    assert len(bomb) < 1024 * 1024
    fault_server.route("GET", "/bomb.png", png_reply(bomb))

    task = run_one(source, f"{fault_server.url}/bomb.png")

    assert task.image_state == ImageState.FAILED
    assert "decompression bomb" in task.image_error


def test_the_fetcher_ignores_a_proxy_from_the_environment(fault_server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    fault_server.route("GET", "/x.png", png_reply())
    with Fetcher(max_bytes=10**6) as fetcher:
        policy = Policy.for_source(fault_server.url, resolved=resolve_origin(fault_server.url))
        fetched = fetcher.fetch(f"{fault_server.url}/x.png", policy)
    assert fetched.data == png()


def test_the_policy_refuses_special_addresses_even_when_private_is_allowed():
    policy = Policy.for_source("http://proxy.lan", allow_private=True)
    special = ["169.254.169.254", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::ffff:169.254.1.1"]  # noqa: S104
    for address in special:
        with pytest.raises(Refused):
            policy.addresses(address, 80)
    assert policy.addresses("10.1.2.3", 80) == ["10.1.2.3"]
    assert policy.addresses("::ffff:127.0.0.1", 80) == ["::ffff:7f00:1"]
    assert policy.addresses("::1", 80) == ["::1"]
    with pytest.raises(Refused, match="private or loopback"):
        Policy.for_source("http://proxy.lan").addresses("::1", 80)
    # The source's own host: on its own port, at the addresses it had at the last sync.
    url = "http://localhost:8080"
    own = Policy.for_source(url, resolved=resolve_origin(url))
    assert "127.0.0.1" in own.addresses("LocalHost", 8080)
    with pytest.raises(Refused, match="private or loopback"):
        own.addresses("localhost", 8081)
    with pytest.raises(FetchError, match="last sync"):
        Policy.for_source(url).addresses("localhost", 8080)  # no addresses noted yet
    with pytest.raises(Refused):
        Policy.for_source("http://proxy.lan").addresses("::ffff:10.0.0.1", 80)


# Order, claims, sharing, retention


def test_finished_tasks_come_first_soonest_to_expire_then_newest():
    source = source_at("http://127.0.0.1:9")
    now = timezone.now()
    url = "http://127.0.0.1:9/x.png"
    rows = {
        "running": pending(source, url, "1", status="IN_PROGRESS", image_expires=now),
        "late": pending(source, url, "2", image_expires=now + timedelta(hours=9)),
        "soon": pending(source, url, "3", image_expires=now + timedelta(hours=1)),
        "no-expiry-old": pending(source, url, "4", image_expires=None),
        "no-expiry-new": pending(
            source, url, "5", image_expires=None, submitted=now - timedelta(minutes=1)
        ),
        "waiting": pending(source, url, "6", image_next_try=now + timedelta(minutes=1)),
    }
    names = {task.pk: name for name, task in rows.items()}

    order = [names[pk] for pk in due(now).values_list("pk", flat=True)]

    assert order == ["soon", "late", "no-expiry-new", "no-expiry-old", "running"]


def test_a_task_claimed_by_another_pass_is_left_alone(fault_server):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", png_reply())
    task = pending(source, f"{fault_server.url}/x.png")
    jobs = archive.claim(timezone.now(), 10, {}, archive.ArchiveCounts())
    assert [job.pk for job in jobs] == [task.pk]

    counts = archive_pass()

    assert counts.archived == 0
    assert fault_server.requests == []


def test_an_image_that_changed_while_it_was_copied_is_not_recorded(fault_server):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/a.png", png_reply())
    task = pending(source, f"{fault_server.url}/a.png", status="IN_PROGRESS")
    counts = archive.ArchiveCounts()
    (job,) = archive.claim(timezone.now(), 10, {}, counts)
    with Fetcher(max_bytes=10**6) as fetcher:
        copied = archive.copy_image(fetcher, job)
    Task.objects.filter(pk=task.pk).update(image_url=f"{fault_server.url}/b.png")

    archive.record_success(job, copied, counts)

    task.refresh_from_db()
    assert counts.skipped == 1 and counts.archived == 0
    assert task.image_state == ImageState.PENDING and task.image_file == ""
    assert not default_storage.exists(copied.image_file)


def test_the_same_image_is_stored_once(fault_server, media):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/a.png", png_reply())
    fault_server.route("GET", "/b.png", png_reply())
    a = pending(source, f"{fault_server.url}/a.png", "1")
    b = pending(source, f"{fault_server.url}/b.png", "2")

    assert archive_pass().archived == 2

    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.image_file, a.thumb_file) == (b.image_file, b.thumb_file)
    assert len(media_files(media)) == 2
    assert stored(a.image_file) == png()


def test_retention_keeps_only_thumbnails_of_old_tasks(fault_server, settings):
    settings.MJ_THUMBS_ONLY_AFTER_DAYS = 30
    source = source_at(fault_server.url)
    fault_server.route("GET", "/old.png", png_reply(png(colour=(1, 1, 1))))
    fault_server.route("GET", "/shared.png", png_reply())
    now = timezone.now()
    old = pending(source, f"{fault_server.url}/old.png", "1", submitted=now - timedelta(days=40))
    old_shared = pending(
        source, f"{fault_server.url}/shared.png", "2", submitted=now - timedelta(days=40)
    )
    new = pending(source, f"{fault_server.url}/shared.png", "3", submitted=now)
    archive_pass()  # copies all three, then prunes the two old originals
    for task in (old, old_shared, new):
        task.refresh_from_db()

    assert old.image_file == "" and old_shared.image_file == ""
    assert new.image_file and default_storage.exists(new.image_file)  # still in use
    assert old.image_state == ImageState.ARCHIVED and default_storage.exists(old.thumb_file)
    assert not default_storage.exists(f"images/{old.image_sha256[:2]}/{old.image_sha256[2:]}.png")
    assert large_url(old) == image_urls.media_url(old.thumb_file)
    assert archive_pass().pruned == 0


# Serving, status, helpers, command, schedule


def test_a_pass_archives_into_another_storage_backend_which_the_media_view_serves(
    fault_server, settings, media, client, django_user_model
):
    backend = "django.core.files.storage.InMemoryStorage"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": backend}}
    store = storages["default"]
    assert type(store) is InMemoryStorage
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", png_reply())
    task = pending(source, f"{fault_server.url}/x.png")

    assert archive_pass().archived == 1

    task.refresh_from_db()
    assert task.image_state == ImageState.ARCHIVED
    assert store.exists(task.image_file) and store.exists(task.thumb_file)
    assert not media.exists()  # nothing went to the file system
    client.force_login(django_user_model.objects.create_user("reader"))
    original = client.get(image_urls.media_url(task.image_file))
    assert original.status_code == 200 and original["Content-Type"] == "image/png"
    assert b"".join(original.streaming_content) == png()
    thumb = client.get(image_urls.media_url(task.thumb_file))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(b"".join(thumb.streaming_content))) as img:
        assert img.format == "WEBP"
    assert status_line(client.get("/"))["archived"] == 1  # the counts went there too


def test_media_files_are_only_served_by_their_exact_names(admin_client, client, media):
    name = "images/ab/" + "c" * 62 + ".png"
    default_storage.save(name, io.BytesIO(png()))
    (media / "secret.txt").write_text("no")
    assert admin_client.get(f"/media/{name}").status_code == 200
    assert client.get(f"/media/{name}").status_code == 302
    for bad in (
        "secret.txt",
        "images/ab/" + "d" * 62 + ".png",  # well formed, not there
        "images/ab/../../secret.txt",
        "images/ab/%2e%2e/%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "images/ab/" + "c" * 62 + ".png/",
        "thumbs/ab/" + "c" * 62 + ".png",
        "/etc/passwd",
    ):
        assert admin_client.get(f"/media/{bad}").status_code == 404, bad
    assert admin_client.post(f"/media/{name}").status_code == 405


def test_a_browser_that_has_the_file_gets_304(admin_client):
    name = "thumbs/ab/" + "e" * 62 + ".webp"
    default_storage.save(name, io.BytesIO(b"RIFF"))
    first = admin_client.get(f"/media/{name}")
    again = admin_client.get(f"/media/{name}", headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304


def test_status_counts_come_from_one_query(django_assert_num_queries):
    source = source_at("http://127.0.0.1:9")
    pending(source, "http://x/1.png", "1")
    pending(source, "http://x/2.png", "2", image_state=ImageState.LOST)
    make_task(source, task_id="3")

    with django_assert_num_queries(1):
        counts = status_counts()

    assert counts == {"none": 1, "pending": 1, "archived": 0, "failed": 0, "lost": 1}


def status_line(response):
    """The overview's archive status line as {state: number}."""
    assert response.status_code == 200
    html = response.content.decode()
    line = html[html.index('id="archive-status"') :]
    line = line[: line.index("</p>")]
    found = re.findall(r'data-state="(\w+)"><span class="count">(\d+)</span>', line)
    return {state: int(n) for state, n in found}


def test_the_overview_shows_how_many_images_are_archived_pending_failed_and_lost(
    fault_server, admin_client
):
    source = source_at(fault_server.url)
    for n in range(1, 6):
        fault_server.route("GET", f"/{n}.png", png_reply(png(colour=(n, 2, 3))))
    for n in range(1, 4):
        pending(source, f"{fault_server.url}/{n}.png", str(n))
    pending(source, "ftp://example.com/x.png", "4")  # refused for good
    pending(source, f"{fault_server.url}/4.png", "5", image_expires=timezone.now())
    make_task(source, task_id="6")  # no image
    page = admin_client.get("/")
    assert status_line(page) == {"pending": 5}  # the rest is counted by the archive passes
    assert "the other counts appear after the first archive pass" in page.content.decode()

    archive_pass()
    pending(source, f"{fault_server.url}/5.png", "7")  # synced since
    later = timezone.now() + timedelta(minutes=1)
    pending(source, f"{fault_server.url}/5.png", "8", image_next_try=later)
    cache.clear()  # the overview's figures are cached for a minute
    with CaptureQueriesContext(connection) as queries:
        line = status_line(admin_client.get("/"))

    assert line == {"archived": 3, "pending": 2, "failed": 1, "lost": 1}
    # Not one GROUP BY over the whole table: a page must cost the same with a million tasks.
    assert not [q for q in queries if "image_state" in q["sql"] and "GROUP BY" in q["sql"]]

    archive_pass()  # archives task 7: the counts follow without a recount
    cache.clear()
    assert status_line(admin_client.get("/")) == {
        "archived": 4,
        "pending": 1,
        "failed": 1,
        "lost": 1,
    }

    # What a sync or a deletion changes is caught by the next recount, five minutes on.
    Task.objects.filter(task_id__in=["1", "4"]).delete()
    archive_pass(now=timezone.now() + timedelta(minutes=6))  # archives task 8, then recounts
    cache.clear()
    line = status_line(admin_client.get("/"))
    assert line == {"archived": 4, "pending": 0, "failed": 0, "lost": 1}
    assert line == {k: n for k, n in status_counts().items() if k != "none"}


def test_the_helpers_show_the_live_link_until_it_expires():
    source = source_at("http://127.0.0.1:9")
    task = pending(source, "https://cdn.discordapp.com/a.png?ex=1&")
    assert thumb_url(task) == large_url(task) == task.image_url
    later = task.image_expires + timedelta(seconds=1)
    assert thumb_url(task, now=later) is None
    task.image_url = "javascript:alert(1)"
    assert thumb_url(task) is None and not image_lost(task)
    assert thumb_size(task) is None


def test_the_command_prints_its_counts(fault_server, capsys):
    source = source_at(fault_server.url)
    fault_server.route("GET", "/x.png", png_reply())
    pending(source, f"{fault_server.url}/x.png")

    call_command("archive_images")

    out = capsys.readouterr().out
    assert "archived=1 failed=0 retrying=0 lost=0 skipped=0 kept=0 pruned=0 in" in out
    assert "images now: pending=0 archived=1 failed=0 lost=0" in out


def test_the_archive_schedule_exists_after_bootstrap():
    from django_q.models import Schedule

    ensure_schedules()
    ensure_schedules()

    (schedule,) = Schedule.objects.filter(name="mjsite: image archive")
    assert schedule.func == "tasks.archive.passes.archive_pass"
    assert schedule.minutes == 1
