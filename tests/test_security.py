"""Security: headers and the CSP, `check --deploy`, a login on every URL, the read-only
viewer group, secrets that never leak, and CSRF on every form.

The XSS corpus in a real browser is tests/test_xss_browser.py.
"""

import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_q.models import OrmQ

from tasks.api import tokens
from tasks.ingest.sync import ingest, sync_source
from tasks.models import ApiToken, InvalidRecord, Source, SyncRun, Task

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-planted-source-secret-7Qm2xZ"
TASK_ID = "1700000000000001"
PASSWORD = "pw-security-123"
CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "https:", "http:", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret=SECRET)


def hook_url(source):
    return f"https://mjsite.example{reverse('hooks:receive', args=[source.hook_token])}"


def poisoned_record(source, **fields):
    """A record as novicezk's proxy sends it: it echoes the notify-hook URL (with its
    token) at the top level and in properties."""
    record = {
        "id": TASK_ID,
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": "黄昏时的灯塔",
        "promptEn": "lighthouse at dusk",
        "description": "/imagine 黄昏时的灯塔",
        "submitTime": 1_700_000_000_000,
        "startTime": 1_700_000_005_000,
        "finishTime": 1_700_000_065_000,
        "progress": "100%",
        "imageUrl": "https://cdn.discordapp.com/attachments/1/2/x.png",
        "notifyHook": hook_url(source),
        "properties": {"finalPrompt": "lighthouse at dusk", "notifyHook": hook_url(source)},
    }
    record.update(fields)
    return record


@pytest.fixture
def planted(source):
    """Every kind of secret mjsite holds, planted where a careless page could show it:
    the source's secret, its notify-hook token (echoed by the proxy in every record and
    kept in an invalid record) and an API token."""
    ingest(source, [poisoned_record(source)])
    ingest(source, [{"id": "1700000000000002", "status": 7, "notifyHook": hook_url(source)}])
    assert InvalidRecord.objects.count() == 1
    SyncRun.objects.create(source=source, kind="full", outcome="ok")
    owner = User.objects.create_user("scripts", password=PASSWORD)
    _row, api_token = tokens.create_token(owner)
    return {"secret": SECRET, "hook": source.hook_token, "api": api_token}


def make_user(name, staff=False, viewer=False, superuser=False):
    user = User.objects.create_user(name, password=PASSWORD, is_staff=staff or superuser)
    user.is_superuser = superuser
    user.save()
    if viewer:
        user.groups.add(Group.objects.get(name="viewer"))
    return user


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def body_of(response):
    if response.streaming:
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


# Headers and the Content-Security-Policy


def parse_csp(header):
    policy = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            policy[words[0]] = words[1:]
    return policy


def test_every_kind_of_response_carries_the_security_headers(planted, admin_client, settings):
    settings.MJ_METRICS_TOKEN = "metrics-token"
    anonymous = Client()
    responses = {
        "login page": anonymous.get(reverse("login")),
        "redirect to login": anonymous.get(reverse("tasks:list")),
        "overview": admin_client.get("/"),
        "list": admin_client.get(reverse("tasks:list")),
        "detail": admin_client.get(reverse("tasks:detail", args=[TASK_ID])),
        "404 page": admin_client.get(reverse("tasks:detail", args=["0000"])),
        "admin": admin_client.get(reverse("admin:tasks_task_changelist")),
        "api": anonymous.get(reverse("api:list"), HTTP_MJ_API_SECRET=planted["api"]),
        "api 401": anonymous.get(reverse("api:list")),
        "healthz": anonymous.get(reverse("healthz")),
        "metrics 401": anonymous.get(reverse("metrics")),
        "csv": admin_client.get(reverse("tasks:export_csv")),
    }
    for name, response in responses.items():
        assert response.status_code < 500, name
        assert parse_csp(response["Content-Security-Policy"]) == CSP, name
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["Referrer-Policy"] == "same-origin", name
        assert response["X-Frame-Options"] == "DENY", name


def test_the_policy_allows_no_inline_script_no_eval_no_plugins_and_no_framing(client):
    policy = parse_csp(client.get(reverse("login"))["Content-Security-Policy"])
    for directive in ("default-src", "script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[directive], directive
        assert "'unsafe-eval'" not in policy[directive], directive
        assert not {"data:", "http:", "https:", "*"} & set(policy[directive]), directive
    assert "script-src-attr" not in policy and "script-src-elem" not in policy
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]


def test_an_archived_image_keeps_its_own_stricter_policy(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    name = "thumbs/ab/" + "c" * 62 + ".webp"
    default_storage.save(name, ContentFile(b"RIFF....WEBPVP8 "))

    response = admin_client.get(reverse("media:file", args=[name]))

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"


SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
EVENT_ATTRIBUTE = re.compile(r"""[\s"']on[a-z]+\s*=""", re.IGNORECASE)


def test_no_template_holds_an_inline_script_handler_or_style():
    # What the CSP would block at run time, caught at the source: every script is a
    # file, no on...= handler, no style attribute or element, no javascript: URL.
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) >= 10
    for path in templates:
        text = path.read_text(encoding="utf-8")
        for attributes in SCRIPT_TAG.findall(text):
            assert "src=" in attributes or "application/json" in attributes, path
        assert not EVENT_ATTRIBUTE.search(text), path
        assert "style=" not in text and "<style" not in text, path
        assert "javascript:" not in text.lower(), path


def test_htmx_is_configured_to_inject_no_style_and_evaluate_nothing(admin_client):
    page = admin_client.get("/").content.decode()
    match = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert match, "base.html configures htmx with a meta tag"
    config = json.loads(match.group(1))
    assert config["includeIndicatorStyles"] is False  # else htmx adds a <style> element
    assert config["allowEval"] is False and config["allowScriptTags"] is False


# `manage.py check --deploy`


def production_environment(**overrides):
    """What a production host sets: deploy/mjsite.env.example with its placeholders
    filled, HSTS at its final value, and a database that needs no server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "MJ_", "DATABASE_URL", "REDIS_URL", "LOG_"))
    }
    for line in (ROOT / "deploy" / "mjsite.env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[name.strip()] = value.strip()
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        MJ_API_SECRET=secrets.token_urlsafe(16),
        MJ_METRICS_TOKEN=secrets.token_urlsafe(16),
        DJANGO_HSTS_SECONDS="31536000",  # the env file starts at an hour, then a year
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="True",
        DJANGO_HSTS_PRELOAD="True",
        DATABASE_URL=f"sqlite:///{Path(tempfile.gettempdir()) / 'mjsite-check-deploy.sqlite3'}",
        LOG_FORMAT="plain",
    )
    env.pop("REDIS_URL", None)  # no Redis needed to check settings
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def check_deploy(env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = check_deploy(production_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "mistake, expected",
    [
        ({"DJANGO_DEBUG": "True"}, "security.W018"),
        ({"DJANGO_SECRET_KEY": None}, "security.W009"),  # the dev default is not a key
        ({"DJANGO_SECURE_SSL_REDIRECT": "False"}, "security.W008"),
        ({"DJANGO_SECURE_COOKIES": "False"}, "security.W012"),
        ({"DJANGO_HSTS_SECONDS": "0"}, "security.W004"),
    ],
)
def test_check_deploy_catches_a_forgotten_production_setting(mistake, expected):
    result = check_deploy(production_environment(**mistake))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


# A login on every URL


def param_values(name, prefix, samples):
    if name == "app_label":
        return samples["app_labels"]
    if name == "object_id" and prefix.startswith("admin/"):
        app, model = prefix.split("/")[1:3]
        return [samples["objects"].get(f"{app}.{model}", "1")]
    return [samples[name]]


PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def every_url(samples, patterns=None, prefix=""):
    """Every URL pattern of the project, through includes, with plausible values in its
    parameters (one URL per alternative of a regex like `auth|tasks`)."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from every_url(samples, entry.url_patterns, prefix + str(entry.pattern))
            continue
        assert isinstance(entry, URLPattern)
        route = prefix + str(entry.pattern).lstrip("^").removesuffix("$")
        urls = [route]
        for match in PARAM.finditer(route):
            name = match.group(2) or match.group(3)
            values = param_values(name, route, samples)
            urls = [u.replace(match.group(0), str(v), 1) for u in urls for v in values]
        for url in urls:
            yield "/" + url.replace("^", "")


@pytest.fixture
def samples(planted, source):
    task = Task.objects.get(task_id=TASK_ID)
    objects = {
        "tasks.task": task.pk,
        "tasks.source": source.pk,
        "tasks.syncrun": SyncRun.objects.first().pk,
        "tasks.invalidrecord": InvalidRecord.objects.first().pk,
        "tasks.apitoken": ApiToken.objects.first().pk,
        "auth.user": User.objects.first().pk,
        "auth.group": Group.objects.first().pk,
    }
    return {
        "task_id": TASK_ID,
        "token": "not-the-hook-token-" + "x" * 24,
        "name": "thumbs/ab/" + "c" * 62 + ".webp",
        "path": "task/no-such-endpoint",
        "url": "no/such/page/",
        "id": User.objects.first().pk,
        "pk": task.pk,
        "which": "thumb",
        "content_type_id": ContentType.objects.get_for_model(Task).pk,
        "object_id": task.pk,
        "app_labels": sorted({m._meta.app_label for m in admin.site._registry}),
        "objects": objects,
    }


# Open by design: the login pages; the logout pages (they log out nobody and show
# nothing); /healthz (for load balancers: no URLs, no secrets); the notify-hook (the
# token in its path is the credential); /metrics (its bearer token, else 404); a share
# link /s/<token>/ (its token is the credential).
OPEN = {"/accounts/login/", "/admin/login/", "/healthz"}


def anonymous_expectation(url, method):
    """The statuses an anonymous request may get, and where a redirect must lead."""
    if url in OPEN:
        return {200, 405} if method == "GET" else {200, 403, 405}, None
    if url == "/accounts/logout/":
        return ({405}, None) if method == "GET" else ({302}, "/accounts/login/")
    if url == "/admin/logout/":
        return ({302}, "/admin/") if method == "GET" else ({200, 302}, None)
    if url.startswith("/admin/"):
        return {302}, "/admin/login/?next="
    if url.startswith("/mj/"):
        return {401, 404, 405}, None  # 404 only for unknown endpoints (not_found)
    if url.startswith("/hooks/"):
        return {404, 405}, None  # a wrong token is no hook
    if url.startswith("/s/") and not url.endswith("/revoke/"):
        return {404, 405}, None  # a share link: its token is the credential, this one wrong
    if url == "/metrics":
        return {401, 404, 405}, None
    if url.startswith("/media/") and method == "POST":
        return {405}, None
    return ({302, 405}, "/accounts/login/?next=") if method == "POST" else ({302}, "/accounts/")


def test_every_url_needs_a_login_or_its_own_credential(samples, settings):
    settings.MJ_METRICS_TOKEN = "metrics-token-" + "y" * 20
    anonymous = Client()
    urls = sorted(set(every_url(samples)))
    assert len(urls) >= 60, urls  # the walk found the admin, the API and the pages
    for url in urls:
        for method in ("GET", "POST"):
            response = getattr(anonymous, method.lower())(url)
            allowed, login = anonymous_expectation(url, method)
            label = (method, url, response.status_code)
            assert response.status_code in allowed, label
            if response.status_code == 302 and login:
                assert response["Location"].startswith(login), label
            if response.status_code == 302 and url not in OPEN:
                assert not response.content, label  # a redirect carries nothing else
            if url.startswith("/mj/") and response.status_code != 405:
                assert response["Content-Type"] == "application/json", label
                assert set(json.loads(response.content)) == {"error"}, label
            if response.status_code == 200:
                assert url in OPEN or "logout" in url, label


def test_the_api_answers_an_anonymous_script_with_401_json(planted):
    for url in (reverse("api:list"), reverse("api:queue"), reverse("api:fetch", args=[TASK_ID])):
        response = Client().get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "error" in response.json()
    response = Client().post(
        reverse("api:list-by-condition"), {"ids": [TASK_ID]}, content_type="application/json"
    )
    assert response.status_code == 401
    assert TASK_ID not in response.content.decode()


def test_healthz_is_open_and_reveals_no_url_or_secret(planted, source):
    response = Client().get(reverse("healthz"))
    assert response.status_code == 200
    text = response.content.decode()
    assert json.loads(text)["database"] == "ok"
    for secret in (SECRET, source.base_url, "127.0.0.1", planted["hook"], planted["api"]):
        assert secret not in text


def test_metrics_is_a_404_without_a_token_and_a_401_with_a_wrong_one(settings, planted):
    settings.MJ_METRICS_TOKEN = ""
    assert Client().get(reverse("metrics")).status_code == 404
    settings.MJ_METRICS_TOKEN = "metrics-token-" + "z" * 20
    assert Client().get(reverse("metrics")).status_code == 401
    wrong = {"HTTP_AUTHORIZATION": f"Bearer {planted['api']}"}  # an API token is not it
    assert Client().get(reverse("metrics"), **wrong).status_code == 401
    right = {"HTTP_AUTHORIZATION": f"Bearer {settings.MJ_METRICS_TOKEN}"}
    assert Client().get(reverse("metrics"), **right).status_code == 200


def test_the_hook_takes_only_posts_with_its_own_token(source):
    right = reverse("hooks:receive", args=[source.hook_token])
    wrong = reverse("hooks:receive", args=[source.hook_token[:-1] + "x"])
    body = json.dumps({"id": "1700000000000009", "status": "SUBMITTED"})

    assert Client().post(wrong, body, content_type="application/json").status_code == 404
    assert Client().get(right).status_code == 405
    response = Client().post(right, body, content_type="application/json")

    assert response.status_code == 200
    assert Task.objects.filter(task_id="1700000000000009").exists()
    assert not Task.objects.filter(task_id="1700000000000009").exclude(source=source).exists()


def test_the_admin_sends_a_logged_in_non_staff_user_to_its_login(samples):
    # Members of "viewer" too: its permissions open the admin only to staff.
    for user in (make_user("plain"), make_user("viewer-only", viewer=True)):
        client = client_for(user)
        checked = 0
        for url in sorted(set(every_url(samples))):
            if not url.startswith("/admin/") or url in ("/admin/login/", "/admin/logout/"):
                continue
            response = client.get(url)
            assert response.status_code == 302, (user.username, url, response.status_code)
            assert response["Location"].startswith("/admin/login/?next="), url
            response = client.post(url, {"name": "changed"})
            assert response.status_code == 302, (user.username, "POST", url)
            checked += 1
        assert checked >= 40


# The viewer group: sees everything, changes nothing


@pytest.fixture
def staff_viewer():
    return make_user("staffviewer", staff=True, viewer=True)


def test_a_viewer_sees_every_page(planted):
    client = client_for(make_user("viewer", viewer=True))
    task = Task.objects.get(task_id=TASK_ID)
    urls = [
        "/",
        reverse("tasks:list"),
        reverse("tasks:gallery"),
        task.get_absolute_url(),
        reverse("tasks:detail_live", args=[TASK_ID]),
        reverse("tasks:list_live") + f"?pk={task.pk}",
        reverse("tasks:export_csv"),
        reverse("tasks:export_jsonl"),
        reverse("api:list"),
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_a_viewer_cannot_refresh_a_task_but_may_switch_the_language(planted):
    client = client_for(make_user("viewer", viewer=True))
    runs = SyncRun.objects.count()

    response = client.post(reverse("tasks:refresh", args=[TASK_ID]), {"source": "main"})

    assert response.status_code == 403
    assert SyncRun.objects.count() == runs
    response = client.post(reverse("tasks:set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302


def test_a_staff_viewer_sees_the_admin_pages_of_the_mirror(planted, staff_viewer, source):
    client = client_for(staff_viewer)
    task = Task.objects.get(task_id=TASK_ID)
    for name, pk in [
        ("task", task.pk),
        ("source", source.pk),
        ("syncrun", SyncRun.objects.first().pk),
        ("invalidrecord", InvalidRecord.objects.first().pk),
    ]:
        assert client.get(reverse(f"admin:tasks_{name}_changelist")).status_code == 200, name
        assert client.get(reverse(f"admin:tasks_{name}_change", args=[pk])).status_code == 200
    # Tokens and accounts are not the mirror's: no permission, no page.
    assert client.get(reverse("admin:tasks_apitoken_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_a_staff_viewer_cannot_change_add_or_delete_anything_in_the_admin(
    planted, staff_viewer, source
):
    client = client_for(staff_viewer)
    task = Task.objects.get(task_id=TASK_ID)
    token = ApiToken.objects.get()
    before = (Source.objects.values().get(), Task.objects.values().get(pk=task.pk))
    change_source = {
        "name": "renamed",
        "base_url": "http://evil.example",
        "secret": "x",
        "auth_header": "mj-api-secret",
        "kind": "auto",
        "enabled": "on",
    }
    posts = [
        (reverse("admin:tasks_source_change", args=[source.pk]), change_source),
        (reverse("admin:tasks_source_add"), change_source | {"name": "another"}),
        (reverse("admin:tasks_source_delete", args=[source.pk]), {"post": "yes"}),
        (reverse("admin:tasks_task_change", args=[task.pk]), {"prompt": "changed"}),
        (reverse("admin:tasks_task_delete", args=[task.pk]), {"post": "yes"}),
        (reverse("admin:tasks_apitoken_change", args=[token.pk]), {"revoked": "on"}),
        (reverse("admin:auth_user_add"), {"username": "x", "password1": "p", "password2": "p"}),
        (reverse("admin:auth_group_change", args=[Group.objects.get(name="viewer").pk]), {}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)

    assert (Source.objects.values().get(), Task.objects.values().get(pk=task.pk)) == before
    assert not ApiToken.objects.filter(revoked=True).exists()
    assert User.objects.filter(username="x").count() == 0


@pytest.mark.parametrize(
    "model, action",
    [
        ("task", "refresh_from_proxy"),
        ("task", "delete_selected"),
        ("source", "sync_now"),
        ("source", "full_sync_now"),
        ("source", "rotate_hook_token"),
        ("source", "delete_selected"),
    ],
)
def test_a_staff_viewer_is_offered_no_admin_action_and_cannot_post_one(
    planted, staff_viewer, source, model, action
):
    client = client_for(staff_viewer)
    obj = Task.objects.get(task_id=TASK_ID) if model == "task" else source
    url = reverse(f"admin:tasks_{model}_changelist")
    runs, token = SyncRun.objects.count(), source.hook_token
    queued = OrmQ.objects.count()

    page = client.get(url).content.decode()
    response = client.post(url, {"action": action, "_selected_action": [obj.pk], "index": 0})

    assert f'value="{action}"' not in page
    # With no action offered, the admin ignores the POST and shows the list again.
    assert response.status_code in (200, 302, 403)
    assert b"successfully" not in response.content and b"New hook URLs" not in response.content
    assert SyncRun.objects.count() == runs, "no pass ran"
    assert OrmQ.objects.count() == queued, "no pass was queued"
    source.refresh_from_db()
    assert source.hook_token == token
    assert Task.objects.filter(task_id=TASK_ID).exists()


def test_staff_with_change_permission_still_run_the_actions(admin_client, planted, source):
    url = reverse("admin:tasks_source_changelist")
    token = source.hook_token
    page = admin_client.get(url).content.decode()
    assert 'value="rotate_hook_token"' in page
    admin_client.post(url, {"action": "rotate_hook_token", "_selected_action": [source.pk]})
    source.refresh_from_db()
    assert source.hook_token != token


# Secrets never leak


def all_pages(task):
    return [
        "/",
        reverse("tasks:list"),
        reverse("tasks:list") + "?q=lighthouse",
        reverse("tasks:gallery"),
        task.get_absolute_url(),
        reverse("tasks:detail_live", args=[task.task_id]),
        reverse("tasks:list_live") + f"?pk={task.pk}",
        reverse("tasks:export_csv"),
        reverse("tasks:export_jsonl"),
    ]


def admin_pages():
    pages = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        for obj in model._default_manager.all()[:3]:
            pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
    return pages


def assert_no_secret(text, planted, where, hook_allowed=False):
    assert planted["secret"] not in text, where
    assert planted["api"] not in text, where
    if not hook_allowed:
        assert planted["hook"] not in text, where


def test_no_page_or_export_shows_a_planted_secret(planted):
    task = Task.objects.get(task_id=TASK_ID)
    for user in (make_user("boss", superuser=True), make_user("viewer", viewer=True)):
        client = client_for(user)
        for url in all_pages(task):
            response = client.get(url)
            assert response.status_code == 200, url
            assert_no_secret(body_of(response), planted, (user.username, url))


def test_no_admin_page_shows_a_planted_secret_except_the_hook_path_to_its_editors(planted, source):
    hook_path = reverse("hooks:receive", args=[source.hook_token])
    source_page = reverse("admin:tasks_source_change", args=[source.pk])
    checked = 0
    for user in (make_user("boss", superuser=True), make_user("sv", staff=True, viewer=True)):
        client = client_for(user)
        for url in admin_pages():
            response = client.get(url)
            if response.status_code == 403:
                continue  # the viewer has no page there
            assert response.status_code == 200, url
            text = body_of(response)
            # The one exception: the Source page shows its hook path to those who may
            # change the source (they set it in the proxy); viewers never see it.
            editor = user.is_superuser and url == source_page
            assert_no_secret(text, planted, (user.username, url), hook_allowed=editor)
            if editor:
                assert text.count(source.hook_token) == 1
                assert f"<code>{hook_path}</code>" in text
            checked += 1
    assert checked >= 25


def test_the_mirror_api_never_shows_the_source_secret_or_an_api_token(planted):
    # The API is lossless by contract (it gives back what the proxy sent, notifyHook
    # included); what mjsite itself holds must never be in it.
    client = Client(HTTP_AUTHORIZATION=f"Bearer {planted['api']}")
    for url in (reverse("api:list"), reverse("api:fetch", args=[TASK_ID]), reverse("api:queue")):
        response = client.get(url)
        assert response.status_code == 200
        assert planted["secret"] not in response.content.decode()
        assert planted["api"] not in response.content.decode()


QUEUED_ID = "1700000000000003"


def test_the_mirror_api_does_not_hand_out_the_hook_token(planted, source):
    # Proxies echo the notify-hook URL (its path is the hook token) in every record; the
    # API masks it in every body, as the pages do, and keeps the records' shape.
    queued = poisoned_record(source, id=QUEUED_ID, status="IN_PROGRESS", progress="31%")
    ingest(source, [queued], in_queue=True)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {planted['api']}")
    responses = {
        "list": client.get(reverse("api:list")),
        "queue": client.get(reverse("api:queue")),
        "fetch": client.get(reverse("api:fetch", args=[TASK_ID])),
        "list-by-condition": client.post(
            reverse("api:list-by-condition"),
            {"ids": [TASK_ID, QUEUED_ID]},
            content_type="application/json",
        ),
    }
    for name, response in responses.items():
        assert response.status_code == 200, name
        text = response.content.decode()
        assert planted["hook"] not in text, name
        assert planted["secret"] not in text, name
        records = json.loads(text)
        for record in records if isinstance(records, list) else [records]:
            assert record["notifyHook"] == hook_url(source).replace(planted["hook"], "•••")
            assert record["properties"]["notifyHook"] == record["notifyHook"]
    assert [r["id"] for r in json.loads(responses["queue"].content)] == [QUEUED_ID]


@pytest.fixture
def console_log():
    """What the project's console handler would print, with its own filters."""
    configured = [h for h in logging.getLogger().handlers if h.filters]
    assert configured, "settings.LOGGING's console handler with its redacting filter"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured[0].formatter)
    for f in configured[0].filters:
        handler.addFilter(f)
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_a_failing_sync_logs_no_secret(start_sim, make_source, caplog, capsys, console_log):
    caplog.set_level(logging.DEBUG)
    sim = start_sim("novicezk", tasks=5)
    planted_secret = "sk-wrong-planted-secret-4Jd8w"
    source = make_source(sim, secret=planted_secret)

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "401" in run.error
    out = capsys.readouterr()
    logged = caplog.text + console_log.getvalue() + out.out + out.err + run.error
    assert "401" in logged  # the failure was logged, and the test saw it
    assert planted_secret not in logged
    assert source.hook_token not in logged
    page = client_for(make_user("boss", superuser=True)).get("/").content.decode()
    assert "401" in page and planted_secret not in page


def test_a_failing_relay_sync_logs_no_bearer_secret(start_sim, make_source, caplog, console_log):
    caplog.set_level(logging.DEBUG)
    sim = start_sim("relay")
    source = make_source(sim, secret="Bearer sk-relay-planted-9x7Kq2")

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    logged = caplog.text + console_log.getvalue() + run.error
    assert "sk-relay-planted-9x7Kq2" not in logged


def test_api_tokens_and_hook_tokens_stay_out_of_the_logs(planted, source, caplog, console_log):
    caplog.set_level(logging.DEBUG)
    wrong_api = planted["api"][:-3] + "zzz"
    Client().get(reverse("api:list"), HTTP_MJ_API_SECRET=planted["api"])
    Client().get(reverse("api:list"), HTTP_AUTHORIZATION=f"Bearer {wrong_api}")
    hook = reverse("hooks:receive", args=[source.hook_token])
    Client().post(hook, "not json", content_type="application/json")  # a 400, logged
    Client().post(hook + "x/", "{}", content_type="application/json")  # a 404

    assert "refused a hook callback" in caplog.text
    assert planted["api"] not in caplog.text and wrong_api not in caplog.text
    assert SECRET not in caplog.text
    # Django's request log names the path; the console handler masks the token in it.
    printed = console_log.getvalue()
    assert "/hooks/mj/" in printed
    assert source.hook_token not in printed


# CSRF on every form


def csrf_token_of(client, url):
    client.get(url)
    return client.cookies["csrftoken"].value


def test_every_form_refuses_a_post_without_the_csrf_token(planted, source):
    boss = make_user("boss", superuser=True)
    client = client_for(boss, enforce_csrf_checks=True)
    posts = [
        (reverse("tasks:refresh", args=[TASK_ID]), {"source": "main"}),
        (reverse("tasks:set_language"), {"language": "zh-hans", "next": "/"}),
        (reverse("admin:tasks_source_change", args=[source.pk]), {"name": "renamed"}),
        (
            reverse("admin:tasks_source_changelist"),
            {"action": "rotate_hook_token", "_selected_action": [source.pk]},
        ),
        (reverse("admin:tasks_apitoken_change", args=[ApiToken.objects.get().pk]), {}),
        (reverse("admin:password_change"), {"old_password": PASSWORD}),
        (reverse("admin:logout"), {}),
        (reverse("logout"), {}),
    ]
    hook_token = source.hook_token
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)
    source.refresh_from_db()
    assert (source.name, source.hook_token) == ("main", hook_token)
    assert "_auth_user_id" in client.session  # the logout was refused too

    anonymous = Client(enforce_csrf_checks=True)
    for url in (reverse("login"), reverse("admin:login")):
        response = anonymous.post(url, {"username": "boss", "password": PASSWORD})
        assert response.status_code == 403, url


def test_the_same_posts_pass_with_the_csrf_token(planted, source):
    client = client_for(make_user("boss", superuser=True), enforce_csrf_checks=True)
    token = csrf_token_of(client, "/")
    response = client.post(
        reverse("tasks:set_language"),
        {"language": "zh-hans", "next": "/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    response = client.post(reverse("logout"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_the_api_refuses_a_session_post_without_the_csrf_token(planted):
    client = client_for(make_user("boss", superuser=True), enforce_csrf_checks=True)
    url = reverse("api:list-by-condition")
    response = client.post(url, {"ids": [TASK_ID]}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    # A token header is no cookie a browser sends by itself: no CSRF check needed.
    response = Client(enforce_csrf_checks=True).post(
        url,
        {"ids": [TASK_ID]},
        content_type="application/json",
        HTTP_MJ_API_SECRET=planted["api"],
    )
    assert response.status_code == 200
