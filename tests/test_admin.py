"""The admin: every page opens for staff, the mirror is read-only, secrets stay hidden."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import escape

from tasks.ingest.sync import ingest
from tasks.models import Source, SyncRun, Task
from tests.conftest import make_task

pytestmark = pytest.mark.django_db

SECRET = "sk-very-secret-value-123"


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret=SECRET)


@pytest.fixture
def filled(source):
    ingest(source, [{"id": "1700000000000001", "status": "SUCCESS", "prompt": "<b>猫猫</b>"}])
    SyncRun.objects.create(source=source, kind="full", outcome="ok")
    return source


def test_every_admin_page_opens_for_a_superuser(admin_client, filled):
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        obj = model._default_manager.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert admin_client.get(change).status_code == 200, change
        if model_admin.has_add_permission(_request(admin_client)):
            add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
            assert admin_client.get(add).status_code == 200, add


def _request(client):
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = User.objects.get(username="admin")
    return request


def test_the_source_secret_is_never_sent_to_the_browser(admin_client, source):
    pages = [
        reverse("admin:tasks_source_changelist"),
        reverse("admin:tasks_source_change", args=[source.pk]),
    ]
    for page in pages:
        assert SECRET not in admin_client.get(page).content.decode()


def test_saving_a_source_without_a_secret_keeps_the_stored_one(admin_client, source):
    url = reverse("admin:tasks_source_change", args=[source.pk])
    data = {
        "name": "main",
        "base_url": "http://127.0.0.1:9",
        "secret": "",
        "auth_header": "mj-api-secret",
        "kind": "auto",
        "enabled": "on",
    }

    response = admin_client.post(url, data)

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.secret == SECRET


def test_tasks_cannot_be_added_or_edited(admin_client, filled):
    task = Task.objects.get()
    assert admin_client.get(reverse("admin:tasks_task_add")).status_code == 403
    url = reverse("admin:tasks_task_change", args=[task.pk])
    admin_client.post(url, {"prompt": "changed"})
    task.refresh_from_db()
    assert task.prompt == "<b>猫猫</b>"


def test_the_task_changelist_escapes_prompts(admin_client, filled):
    html = admin_client.get(reverse("admin:tasks_task_changelist")).content.decode()
    assert "<b>猫猫</b>" not in html
    assert "&lt;b&gt;猫猫&lt;/b&gt;" in html


def test_the_admin_needs_staff(client, django_user_model):
    django_user_model.objects.create_user("viewer", password="pw-12345-abc")
    # django-axes counts every login: it needs the request, a blank one here.
    client.login(request=HttpRequest(), username="viewer", password="pw-12345-abc")

    response = client.get(reverse("admin:tasks_task_changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_task_changelist_does_not_count_the_table(
    admin_client, filled, django_assert_max_num_queries
):
    for i in range(3):
        make_task(filled, task_id=f"17000000000001{i:02d}")
    with django_assert_max_num_queries(8) as ctx:
        admin_client.get(reverse("admin:tasks_task_changelist"))
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the changelist shows a (capped) count"
    assert all("LIMIT 10000" in sql for sql in counts if '"tasks_task"' in sql)


@pytest.fixture
def archived(source, tmp_path, settings):
    """Two tasks with archived files, one file shared, submitted an hour ago (rolled up)."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from tasks.models import TaskEvent
    from tasks.reports import rollup

    settings.MEDIA_ROOT = tmp_path / "media"
    shared = default_storage.save("images/ab/shared.png", ContentFile(b"png"))
    own = default_storage.save("thumbs/cd/own.webp", ContentFile(b"webp"))
    hour_ago = timezone.now() - timedelta(hours=1)
    gone = make_task(source, task_id="1700000000000001")
    kept = make_task(source, task_id="1700000000000002")
    Task.objects.filter(pk=gone.pk).update(image_file=shared, thumb_file=own, submitted=hour_ago)
    Task.objects.filter(pk=kept.pk).update(image_file=shared, submitted=hour_ago)
    TaskEvent.objects.create(task=gone, status="SUCCESS")
    rollup.refresh()
    return {"gone": gone, "kept": kept, "shared": shared, "own": own, "hour": hour_ago}


def assert_deleted_with_what_hangs_on_it(archived):
    from django.core.files.storage import default_storage

    from tasks.models import RolledHour, TaskEvent
    from tasks.reports import rollup

    assert not Task.objects.filter(pk=archived["gone"].pk).exists()
    assert not TaskEvent.objects.filter(task_id=archived["gone"].pk).exists()
    assert not default_storage.exists(archived["own"])
    assert default_storage.exists(archived["shared"])  # the other task still shows it
    assert not RolledHour.objects.filter(hour=rollup.hour_start(archived["hour"])).exists()


def test_deleting_a_task_in_the_admin_takes_its_files_and_roll_up_hour(
    admin_client, archived, django_capture_on_commit_callbacks
):
    url = reverse("admin:tasks_task_delete", args=[archived["gone"].pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert_deleted_with_what_hangs_on_it(archived)


def test_the_delete_action_takes_their_files_and_roll_up_hours(
    admin_client, archived, django_capture_on_commit_callbacks
):
    url = reverse("admin:tasks_task_changelist")
    data = {"action": "delete_selected", "_selected_action": [archived["gone"].pk], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)
    assert response.status_code == 302
    assert_deleted_with_what_hangs_on_it(archived)


# The mirror is read-only in the admin, superusers included


def stale_read(monkeypatch, model_admin_class, **older):
    """The admin's POST holds an older copy of the row than the database: it read the
    row just before a sync pass, a hook or an API request wrote it (the admin reads in
    the request's own transaction, so the write is simulated by ageing the copy)."""
    original = model_admin_class.get_object

    def get_object(self, request, object_id, from_field=None):
        obj = original(self, request, object_id, from_field)
        if request.method == "POST" and obj is not None:
            for name, value in older.items():
                setattr(obj, name, value)
        return obj

    monkeypatch.setattr(model_admin_class, "get_object", get_object)


def form_data(html):
    """What a browser would post from the page's change form: its inputs (the inlines'
    management forms included), text areas and selected options."""
    from html.parser import HTMLParser

    data = {}

    class Form(HTMLParser):
        textarea = select = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            name = a.get("name")
            if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
                if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                    data.setdefault(name, []).append(a.get("value") or "")
            elif tag == "textarea" and name:
                self.textarea = name
                data.setdefault(name, []).append("")
            elif tag == "select" and name:
                self.select = name
            elif tag == "option" and self.select and "selected" in a:
                data.setdefault(self.select, []).append(a.get("value") or "")

        def handle_endtag(self, tag):
            if tag == "textarea":
                self.textarea = None
            elif tag == "select":
                self.select = None

        def handle_data(self, text):
            if self.textarea:
                data[self.textarea][-1] += text

    Form().feed(html)
    return data


def test_a_superusers_post_to_the_task_change_form_writes_nothing(
    admin_client, source, monkeypatch
):
    from django.contrib.admin.models import LogEntry

    from tasks.admin import TaskAdmin

    running = {"id": "1700000000000009", "status": "IN_PROGRESS", "progress": "40%"}
    ingest(source, [running | {"prompt": "灯塔"}])
    old = Task.objects.get()
    newer = running | {"prompt": "灯塔", "status": "SUCCESS", "progress": "100%"}
    ingest(source, [newer])
    older = {f: getattr(old, f) for f in ("status", "progress", "progress_pct", "raw")}
    stale_read(monkeypatch, TaskAdmin, **older, raw_hash=old.raw_hash)
    task = Task.objects.get()
    url = reverse("admin:tasks_task_change", args=[task.pk])

    page = admin_client.get(url).content.decode()
    posted = form_data(page) | {"status": "NOT_START", "progress": "0%", "_save": "Save"}
    response = admin_client.post(url, posted)

    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert 'name="status"' not in page  # shown as text, no input
    assert response.status_code == 403
    task.refresh_from_db()
    # What the sync stored while the admin held the form, not the admin's older copy.
    assert (task.status, task.progress, task.progress_pct) == ("SUCCESS", "100%", 100)
    assert json.loads(task.raw) == newer
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("model", ["syncrun", "invalidrecord"])
def test_sync_runs_and_invalid_records_cannot_be_edited_by_a_superuser(admin_client, source, model):
    from django.contrib.admin.models import LogEntry

    from tasks.models import InvalidRecord

    run = SyncRun.objects.create(source=source, kind="full", outcome="ok", fetched=5)
    bad = InvalidRecord.objects.create(source=source, task_id="x", reason="no id", raw="[]")
    obj = {"syncrun": run, "invalidrecord": bad}[model]
    before = type(obj).objects.values().get(pk=obj.pk)
    url = reverse(f"admin:tasks_{model}_change", args=[obj.pk])

    page = admin_client.get(url).content.decode()
    posted = form_data(page) | {"outcome": "failed", "fetched": "0", "reason": "x"}
    response = admin_client.post(url, posted)

    assert 'name="_save"' not in page
    assert response.status_code == 403
    assert type(obj).objects.values().get(pk=obj.pk) == before
    assert admin_client.get(reverse(f"admin:tasks_{model}_add")).status_code == 403
    assert not LogEntry.objects.exists()


def test_saving_a_source_keeps_what_a_sync_and_the_hooks_wrote_meanwhile(
    admin_client, source, monkeypatch
):
    from django.utils import timezone

    from tasks.admin import SourceAdmin

    lease_until = timezone.now() + timedelta(minutes=5)
    Source.objects.filter(pk=source.pk).update(
        lease_owner="worker-1", lease_until=lease_until, hooks_received=7
    )
    stale_read(monkeypatch, SourceAdmin, lease_owner="", lease_until=None, hooks_received=0)
    data = {
        "name": "main",
        "base_url": "http://127.0.0.1:10",
        "secret": "",
        "auth_header": "mj-api-secret",
        "kind": "auto",
        "enabled": "on",
    }

    response = admin_client.post(reverse("admin:tasks_source_change", args=[source.pk]), data)

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.base_url == "http://127.0.0.1:10"
    assert source.secret == SECRET
    # A full save would have freed the running pass's lease and lost seven hooks.
    assert (source.lease_owner, source.lease_until) == ("worker-1", lease_until)
    assert source.hooks_received == 7


def test_a_superuser_revokes_an_api_token_in_the_admin(admin_client, source, monkeypatch):
    from django.contrib.auth.models import User
    from django.test import Client

    from tasks.admin import ApiTokenAdmin
    from tasks.api.tokens import create_token
    from tasks.models import ApiToken

    make_task(source)
    row, token = create_token(User.objects.create_user("script"))
    api = Client()
    assert api.get("/mj/task/list", headers={"mj-api-secret": token}).status_code == 200
    used = ApiToken.objects.get().last_used
    assert used is not None
    stale_read(monkeypatch, ApiTokenAdmin, last_used=None)

    url = reverse("admin:tasks_apitoken_change", args=[row.pk])
    response = admin_client.post(url, {"revoked": "on"})

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked
    assert row.last_used == used  # the API request's stamp, not the admin's older copy
    for headers in ({"mj-api-secret": token}, {"Authorization": f"Bearer {token}"}):
        assert api.get("/mj/task/list", headers=headers).status_code == 401


# Refresh from proxy


@pytest.fixture
def task_editor(django_user_model):
    """Staff with tasks.view_task and tasks.change_task, not a superuser."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("editor", password="pw-12345-abc")
    user.is_staff = True
    user.save()
    perms = Permission.objects.filter(
        content_type__app_label="tasks", codename__in=["view_task", "change_task"]
    )
    user.user_permissions.add(*perms)
    return user


def test_staff_refresh_selected_tasks_from_a_live_simulator(
    client, task_editor, start_sim, make_source, clock
):
    from tasks.ingest.sync import sync_source

    sim = start_sim("novicezk")
    source = make_source(sim)
    chosen = sim.submit(prompt="灯塔")
    other = sim.submit(prompt="猫猫")
    forgotten = sim.submit(prompt="山水")
    sync_source(source)
    assert set(Task.objects.values_list("status", flat=True)) != {"SUCCESS"}
    before_other = Task.objects.values("status", "raw").get(task_id=other)
    clock.advance(600)  # the simulator finishes them
    sim.forget(forgotten)  # and forgets this one (its TTL ran out)
    assert sim.record(chosen)["status"] == "SUCCESS"
    client.force_login(task_editor)
    url = reverse("admin:tasks_task_changelist")
    assert 'value="refresh_from_proxy"' in client.get(url).content.decode()
    pks = list(Task.objects.filter(task_id__in=[chosen, forgotten]).values_list("pk", flat=True))

    response = client.post(
        url, {"action": "refresh_from_proxy", "_selected_action": pks}, follow=True
    )

    chosen_task = Task.objects.get(task_id=chosen)
    assert (chosen_task.status, chosen_task.progress) == ("SUCCESS", "100%")
    assert Task.objects.get(task_id=forgotten).gone_since is not None
    assert Task.objects.values("status", "raw").get(task_id=other) == before_other
    run = SyncRun.objects.order_by("-pk").first()
    assert (run.outcome, run.updated, run.gone) == ("ok", 1, 1)
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert shown == [("success", run.summary())]
    assert f"{source.name}: ok" in shown[0][1] and "updated=1" in shown[0][1]
    assert "gone=1" in shown[0][1]


def test_refresh_from_proxy_refuses_a_selection_over_the_limit(admin_client, source, monkeypatch):
    from tasks import admin as task_admin

    monkeypatch.setattr(task_admin, "REFRESH_LIMIT", 2)
    pks = [make_task(source, task_id=f"17000000000002{i:02d}").pk for i in range(3)]

    response = admin_client.post(
        reverse("admin:tasks_task_changelist"),
        {"action": "refresh_from_proxy", "_selected_action": pks},
        follow=True,
    )

    assert not SyncRun.objects.exists()
    assert "Select at most 2 tasks" in response.content.decode()


# Search and filters


def listed(client, **params):
    response = client.get(reverse("admin:tasks_task_changelist"), params)
    assert response.status_code == 200
    return {task.task_id for task in response.context["cl"].result_list}


def test_admin_search_finds_a_task_by_its_id_and_by_words_of_its_prompt(admin_client, source):
    make_task(source, task_id="1700000000000301", prompt="a lighthouse at dusk, oil painting")
    make_task(source, task_id="1700000000000302", prompt="a cat asleep in the snow")
    make_task(source, task_id="1700000000000303", prompt="黄昏时的灯塔 --ar 16:9")

    assert listed(admin_client, q="1700000000000302") == {"1700000000000302"}
    assert listed(admin_client, q="dusk lighthouse") == {"1700000000000301"}  # any order
    assert listed(admin_client, q="painting") == {"1700000000000301"}
    assert listed(admin_client, q="灯塔") == {"1700000000000303"}
    assert listed(admin_client, q="lighthouse snow") == set()  # every word must match
    assert listed(admin_client, q="") == {"1700000000000301", "1700000000000302"} | {
        "1700000000000303"
    }


def test_the_changelist_filters_each_narrow_the_list(admin_client, source):
    from django.utils import timezone

    other = Source.objects.create(name="second", base_url="http://127.0.0.1:10")
    now = timezone.now()
    rows = [
        # id, source, status, action, submitted this long ago
        ("1", source, "SUCCESS", "IMAGINE", timedelta(minutes=10)),
        ("2", source, "FAILURE", "UPSCALE", timedelta(hours=5)),
        ("3", other, "SUCCESS", "UPSCALE", timedelta(days=3)),
        ("4", other, "IN_PROGRESS", "IMAGINE", timedelta(days=20)),
        ("5", source, "SUCCESS", "VARIATION", timedelta(days=90)),
    ]
    for task_id, src, status, action, ago in rows:
        make_task(src, task_id=task_id, status=status, action=action, submitted=now - ago)

    assert listed(admin_client) == {"1", "2", "3", "4", "5"}
    assert listed(admin_client, status="SUCCESS") == {"1", "3", "5"}
    assert listed(admin_client, action="UPSCALE") == {"2", "3"}
    assert listed(admin_client, source__id__exact=other.pk) == {"3", "4"}
    assert listed(admin_client, submitted="1h") == {"1"}
    assert listed(admin_client, submitted="24h") == {"1", "2"}
    assert listed(admin_client, submitted="7d") == {"1", "2", "3"}
    assert listed(admin_client, submitted="30d") == {"1", "2", "3", "4"}
    assert listed(admin_client, submitted="older") == {"5"}
    assert listed(admin_client, status="SUCCESS", source__id__exact=source.pk) == {"1", "5"}
    assert listed(admin_client, action="IMAGINE", submitted="24h") == {"1"}


# Images


@pytest.fixture
def media(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"


def change_page(client, task):
    response = client.get(reverse("admin:tasks_task_change", args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_change_page_shows_the_archived_thumbnail_linked_to_the_original(
    admin_client, source, media
):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tasks.archive.display import media_url
    from tasks.models import ImageState

    # Named as the archive names them (content-addressed), which the media view requires.
    digest = hashlib.sha256(b"png-bytes").hexdigest()
    image = default_storage.save(f"images/{digest[:2]}/{digest[2:]}.png", ContentFile(b"png"))
    thumb = default_storage.save(f"thumbs/{digest[:2]}/{digest[2:]}.webp", ContentFile(b"webp"))
    task = make_task(
        source,
        image_url="https://cdn.discordapp.com/attachments/1/2/gone.png",
        image_state=ImageState.ARCHIVED,
        image_file=image,
        thumb_file=thumb,
        image_width=1024,
        image_height=512,
    )

    html = change_page(admin_client, task)

    expected = '<a href="{}"><img src="{}" width="320" height="160"'
    assert expected.format(media_url(image), media_url(thumb)) in html
    assert "archived copy" in html
    served = admin_client.get(media_url(thumb))
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == b"webp"


def test_the_change_page_shows_a_live_proxy_link_only_if_it_is_http(admin_client, source):
    from django.utils import timezone

    from tasks.models import ImageState

    live = "https://cdn.discordapp.com/attachments/1/2/cat.png?ex=1&is=2&hm=3"
    expires = timezone.now() + timedelta(hours=20)
    task = make_task(source, image_url=live, image_state=ImageState.PENDING, image_expires=expires)
    odd = make_task(
        source,
        task_id="1700000000000002",
        image_url="javascript:alert(1)",
        image_state=ImageState.NONE,
    )

    html = change_page(admin_client, task)
    odd_html = change_page(admin_client, odd)

    shown = '<a href="{0}"><img src="{0}" width="320" alt='.format(escape(live))
    assert shown in html  # its size is not known: a width, the browser keeps the shape
    assert "not archived" in html
    assert 'src="javascript:' not in odd_html and 'href="javascript:' not in odd_html
    assert "not an http(s) link" in odd_html


def test_a_lost_failed_or_expired_image_says_so_on_the_change_page_and_in_the_list(
    admin_client, source
):
    from django.utils import timezone

    from tasks.models import ImageState

    link = "https://cdn.discordapp.com/attachments/1/2/old.png?ex=1"
    lost = make_task(
        source,
        task_id="1700000000000401",
        image_url=link,
        image_state=ImageState.LOST,
        image_error="HTTP 404 from cdn.discordapp.com",
    )
    failed = make_task(
        source,
        task_id="1700000000000402",
        image_url="ftp://example.com/x.png",
        image_state=ImageState.FAILED,
        image_error="not an http(s) link",
    )
    expired = make_task(
        source,
        task_id="1700000000000403",
        image_url=link,
        image_state=ImageState.PENDING,
        image_expires=timezone.now() - timedelta(minutes=1),
    )

    lost_html = change_page(admin_client, lost)
    failed_html = change_page(admin_client, failed)
    expired_html = change_page(admin_client, expired)
    listing = admin_client.get(reverse("admin:tasks_task_changelist")).content.decode()

    assert "image lost: the link expired before it could be copied" in lost_html
    assert "copying it failed" in failed_html
    assert "link has expired and no copy was archived" in expired_html
    for html in (lost_html, expired_html, listing):
        assert f'src="{link}' not in html  # a dead link is not shown
    assert '<span title="HTTP 404 from cdn.discordapp.com">lost</span>' in listing
    assert '<span title="not an http(s) link">failed</span>' in listing
    assert "expired</span>" in listing


# No COUNT over big tables


def test_the_sync_run_changelist_does_not_count_the_table(
    admin_client, source, django_assert_max_num_queries
):
    SyncRun.objects.bulk_create(
        SyncRun(source=source, kind="light", outcome="ok") for _ in range(5)
    )
    with django_assert_max_num_queries(10) as ctx:
        response = admin_client.get(reverse("admin:tasks_syncrun_changelist"))
    assert response.status_code == 200
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    run_counts = [sql for sql in counts if '"tasks_syncrun"' in sql]
    assert run_counts, "the changelist shows a (capped) count"
    assert all("LIMIT 10000" in sql for sql in run_counts)
