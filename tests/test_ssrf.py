"""Issue 13, items 3 and 4: a proxy or an image link must not turn mjsite against the
network it runs in, nor read what answers there back to the people who use mjsite.

Every server here is real HTTP on loopback: a hostile proxy (tests/faultserver.py) and a
second server on another port standing for an internal service, which must never be asked.
"""

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from tasks.archive.passes import archive_pass
from tasks.ingest.sync import sync_source
from tasks.models import ImageState, Source, SyncRun, Task
from tests.conftest import make_task
from tests.faultserver import FaultServer, Reply

pytestmark = pytest.mark.django_db

SECRET = "s3cret-of-the-hostile-proxy"
LEAK = b"INTERNAL-ONLY: admin-password=hunter22"
METADATA = "/latest/meta-data/iam/security-credentials/admin"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def internal():
    """The internal service: answers the metadata path, and must never be asked."""
    server = FaultServer().start()
    server.route("GET", METADATA, Reply(200, LEAK, TEXT))
    yield server
    server.stop()


@pytest.fixture
def hostile(fault_server):
    """The proxy, as a source of mjsite."""
    return Source.objects.create(name="hostile", base_url=fault_server.url, secret=SECRET)


@pytest.fixture
def fast_users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reader(fast_users):
    return logged_in(User.objects.create_user("reader", password="pw-reader-123"))


@pytest.fixture
def staff(fast_users):
    return logged_in(User.objects.create_superuser("boss", password="pw-boss-123"))


def port_of(url):
    return int(url.rsplit(":", 1)[1])


# Item 3: the sync follows redirects only on the source's own scheme, host and port

ELSEWHERE = {
    "another-port": lambda proxy, internal: internal.url + METADATA,
    "scheme-relative-another-port": lambda proxy, internal: (
        f"//127.0.0.1:{port_of(internal.url)}" + METADATA
    ),
    "another-host-name-same-port": lambda proxy, internal: (
        f"http://localhost:{port_of(proxy.url)}" + "/mj/task/queue"
    ),
    "https-same-host": lambda proxy, internal: (
        f"https://127.0.0.1:{port_of(proxy.url)}" + "/mj/task/queue"
    ),
}


@pytest.mark.parametrize("where", ELSEWHERE)
def test_a_redirect_off_the_sources_host_and_port_is_refused_before_any_request(
    fault_server, hostile, internal, where
):
    location = ELSEWHERE[where](fault_server, internal)
    fault_server.route("GET", "/mj/task/queue", Reply(302, b"", {"Location": location}))

    run = sync_source(hostile)

    assert internal.requests == []
    assert [r[1] for r in fault_server.requests] == ["/mj/task/queue"]
    assert run.outcome == SyncRun.Outcome.FAILED
    assert "redirect" in run.error and "refused" in run.error, run.error
    assert "INTERNAL-ONLY" not in run.error + run.error_detail


def test_a_redirect_of_the_full_list_to_an_internal_service_is_refused(
    fault_server, hostile, internal
):
    fault_server.route("GET", "/mj/task/queue", Reply(200, b"[]"))
    fault_server.route(
        "GET", "/mj/task/list", Reply(307, b"", {"Location": internal.url + METADATA})
    )

    run = sync_source(hostile, full=True)

    assert internal.requests == []
    assert run.outcome == SyncRun.Outcome.FAILED
    assert "refused" in run.error and "/mj/task/list" in run.error


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_a_redirect_on_the_sources_own_host_and_port_is_followed(fault_server, hostile, absolute):
    target = "/v2/mj/task/queue"
    location = fault_server.url + target if absolute else target
    fault_server.route("GET", "/mj/task/queue", Reply(301, b"", {"Location": location}))
    fault_server.route("GET", target, Reply(200, b"[]"))

    run = sync_source(hostile)

    assert run.outcome == SyncRun.Outcome.OK, run.error
    followed = [r for r in fault_server.requests if r[1] == target]
    assert len(followed) == 1
    assert followed[0][2].get("mj-api-secret") == SECRET  # the same origin: the secret goes


# Item 3: what a proxy's answer says reaches staff only, masked


def answer_holding_the_leak():
    return json.dumps({"error": LEAK.decode(), "echo": SECRET}).encode()


def test_the_body_of_a_bad_answer_reaches_staff_only(fault_server, hostile, reader, staff):
    body = answer_holding_the_leak()
    fault_server.route("GET", "/mj/task/queue", Reply(200, body))

    run = sync_source(hostile)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "not a list of tasks" in run.error and f"{len(body)} bytes" in run.error, run.error
    assert "INTERNAL-ONLY" not in run.error and SECRET not in run.error
    assert "INTERNAL-ONLY" in run.error_detail and SECRET not in run.error_detail

    overview = reader.get(reverse("tasks:overview")).content.decode()
    assert "the last sync failed" in overview and "not a list of tasks" in overview
    assert "INTERNAL-ONLY" not in overview and "hunter22" not in overview

    health = Client().get("/healthz").content.decode()
    assert json.loads(health)["sources"]["hostile"]["status"] == "failing"
    assert "INTERNAL-ONLY" not in health

    admin_page = reverse("admin:tasks_syncrun_change", args=[run.pk])
    assert admin_page not in overview  # for staff only: a link to what the proxy answered
    assert admin_page in staff.get(reverse("tasks:overview")).content.decode()
    page = staff.get(admin_page).content.decode()
    assert "INTERNAL-ONLY: admin-password=hunter22" in page
    assert SECRET not in page and "•••" in page


def test_an_error_status_keeps_its_body_for_staff(fault_server, hostile, reader):
    fault_server.route("GET", "/mj/task/queue", Reply(500, LEAK, TEXT))

    run = sync_source(hostile)

    assert "500 from" in run.error and "INTERNAL-ONLY" not in run.error
    assert "INTERNAL-ONLY" in run.error_detail
    assert "INTERNAL-ONLY" not in reader.get(reverse("tasks:overview")).content.decode()


def test_the_refresh_button_shows_no_body(fault_server, hostile, fast_users):
    task = make_task(hostile, task_id="1700000000000042")
    user = User.objects.create_user("editor", password="pw-editor-123")
    user.user_permissions.add(
        Permission.objects.get(codename="change_task", content_type__app_label="tasks")
    )
    fault_server.route("GET", f"/mj/task/{task.task_id}/fetch", Reply(500, LEAK, TEXT))

    response = logged_in(user).post(
        reverse("tasks:refresh", args=[task.task_id]), {"source": hostile.name}, follow=True
    )

    page = response.content.decode()
    assert "The proxy could not be asked" in page and "500 from" in page
    assert "INTERNAL-ONLY" not in page


def test_sync_tasks_shows_the_operator_the_body_masked(fault_server, hostile):
    fault_server.route("GET", "/mj/task/queue", Reply(200, answer_holding_the_leak()))
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(SystemExit):
        call_command("sync_tasks", "--source", "hostile", stdout=out, stderr=err)

    assert "not a list of tasks" in err.getvalue()
    assert "INTERNAL-ONLY: admin-password=hunter22" in err.getvalue()
    assert SECRET not in err.getvalue() + out.getvalue()


# Item 4: the archive trusts the source's own host on the source's own port only


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MJ_ARCHIVE_TIMEOUT = 2
    settings.MJ_ARCHIVE_DEADLINE = 10
    settings.MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS = ""
    return settings.MEDIA_ROOT


def png():
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def pending(source, url, task_id="1700000000000001"):
    return make_task(
        source,
        task_id=task_id,
        image_url=url,
        image_state=ImageState.PENDING,
        image_expires=timezone.now() + timedelta(hours=20),
    )


def archived(task):
    archive_pass()
    task.refresh_from_db()
    return task


def test_an_image_on_the_sources_host_but_another_port_is_refused(fault_server, hostile, internal):
    internal.route("GET", "/x.png", Reply(200, png(), {"Content-Type": "image/png"}))

    task = archived(pending(hostile, f"{internal.url}/x.png"))

    assert internal.requests == []
    assert task.image_state == ImageState.FAILED
    assert "private or loopback" in task.image_error, task.image_error


def test_a_redirect_from_the_sources_port_to_another_port_is_refused(
    fault_server, hostile, internal
):
    internal.route("GET", "/x.png", Reply(200, png(), {"Content-Type": "image/png"}))
    fault_server.route("GET", "/x.png", Reply(302, b"", {"Location": f"{internal.url}/x.png"}))

    task = archived(pending(hostile, f"{fault_server.url}/x.png"))

    assert internal.requests == []
    assert task.image_state == ImageState.FAILED
    assert "private or loopback" in task.image_error


def test_an_image_on_the_sources_own_host_and_port_is_copied(fault_server, hostile):
    fault_server.route("GET", "/x.png", Reply(200, png(), {"Content-Type": "image/png"}))

    task = archived(pending(hostile, f"{fault_server.url}/x.png"))

    assert task.image_state == ImageState.ARCHIVED, task.image_error
    host, port = "127.0.0.1", port_of(fault_server.url)
    # Its addresses were not known yet (no sync since it was saved): noted at first use.
    hostile.refresh_from_db()
    assert hostile.resolved_addresses == {"host": host, "port": port, "addresses": [host]}


def test_a_sync_notes_the_addresses_of_the_sources_host(fault_server, hostile):
    fault_server.route("GET", "/mj/task/queue", Reply(200, b"[]"))

    assert sync_source(hostile).outcome == SyncRun.Outcome.OK

    hostile.refresh_from_db()
    assert hostile.resolved_addresses == {
        "host": "127.0.0.1",
        "port": port_of(fault_server.url),
        "addresses": ["127.0.0.1"],
    }


def test_an_address_the_sources_host_did_not_have_when_synced_is_not_trusted(fault_server):
    # The source's name once resolved to 10.20.30.40; now it says 127.0.0.1 (a DNS answer
    # changed after the last sync): the loopback address is not the source's.
    port = port_of(fault_server.url)
    source = Source.objects.create(
        name="renamed",
        base_url=f"http://localhost:{port}",
        resolved_addresses={"host": "localhost", "port": port, "addresses": ["10.20.30.40"]},
    )
    fault_server.route("GET", "/x.png", Reply(200, png(), {"Content-Type": "image/png"}))

    task = archived(pending(source, f"http://localhost:{port}/x.png"))

    assert fault_server.requests == []
    assert task.image_state == ImageState.PENDING  # tried again after the next sync
    assert "127.0.0.1" in task.image_error and "last sync" in task.image_error


@pytest.mark.parametrize("content_type", ["text/plain", "x-admin-password=hunter22"])
def test_a_non_image_answer_leaves_no_body_bytes(
    fault_server, hostile, reader, staff, content_type
):
    fault_server.route("GET", "/x.png", Reply(200, LEAK, {"Content-Type": content_type}))

    task = archived(pending(hostile, f"{fault_server.url}/x.png"))

    assert task.image_state == ImageState.PENDING
    assert task.image_error.startswith("not an image"), task.image_error
    assert f"{len(LEAK)} bytes" in task.image_error
    row = Task.objects.filter(pk=task.pk).values().get()
    for leaked in ("INTERNAL", "hunter22", "admin-password"):
        assert not [k for k, v in row.items() if leaked in str(v)], leaked
    pages = [
        reader.get(task.get_absolute_url()),
        staff.get(reverse("admin:tasks_task_changelist")),
        staff.get(reverse("admin:tasks_task_change", args=[task.pk])),
    ]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert "not an image" in pages[2].content.decode()
    for page in pages:
        assert "INTERNAL" not in page.content.decode()


def test_an_answer_that_is_not_http_leaves_no_bytes_either(fault_server, hostile):
    # A service that does not speak HTTP answers with its own first line (a banner):
    # it must not come back in the error, where it would name what runs there.
    fault_server.route("GET", "/x.png", Reply(raw=LEAK + b"\r\n\r\n"))

    task = archived(pending(hostile, f"{fault_server.url}/x.png"))

    assert task.image_state == ImageState.PENDING
    assert task.image_error.startswith("could not connect"), task.image_error
    assert "INTERNAL" not in task.image_error and "hunter22" not in task.image_error
