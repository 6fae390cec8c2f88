"""The admin: every page opens for staff, the mirror is read-only, secrets stay hidden."""

import pytest
from django.contrib import admin
from django.urls import reverse

from tasks.models import Source, SyncRun, Task
from tasks.sync import ingest

from .conftest import make_task

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
    client.login(username="viewer", password="pw-12345-abc")

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

    from tasks import rollup
    from tasks.models import TaskEvent

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

    from tasks import rollup
    from tasks.models import RolledHour, TaskEvent

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
