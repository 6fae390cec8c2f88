"""Operations: /healthz, /metrics, purge_tasks, production settings, and the deploy/
files, each used for real (gunicorn started with deploy/gunicorn.conf.py, nginx with
deploy/nginx.conf, systemd-analyze over the units) so they cannot rot."""

import configparser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import timezone

from tasks.models import ImageState, Source, SyncRun, Task, TaskEvent
from tasks.reports import metrics
from tests.conftest import IN_CI, ci_flag, make_task
from tests.test_crash_safety import database_url

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PY = sys.executable
TOKEN = "metrics-t0ken"


# Helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MJ_", "LOG_"))}
    env.update(DJANGO_SETTINGS_MODULE="mjsite.settings", LOG_LEVEL="WARNING")
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def python_settings(code, **env):
    """Run code with mjsite's settings loaded in a fresh process and the given environment."""
    prelude = "import django; django.setup(); from django.conf import settings\n"
    result = subprocess.run(
        [PY, "-c", prelude + code],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def wait_for(url, seconds=30, **kwargs):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return requests.get(url, timeout=5, **kwargs)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def need_tool(name, package=None):
    """The tool's path; skipped where it is not installed, a failure under CI (.ci/run
    installs every tool the suite uses, so one missing there is a broken CI machine)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {package or name})"
        if IN_CI:
            pytest.fail(message + ": CI must install it (.ci/run)")
        pytest.skip(message)
    return path


@pytest.mark.parametrize(
    "value, is_ci",
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("gitlab", True),
        ("", False),
        (None, False),
        ("0", False),
        ("false", False),
        ("False", False),
        (" false ", False),
    ],
)
def test_any_ci_value_but_empty_0_or_false_means_ci(value, is_ci):
    # Whatever spelling a CI service uses, a missing tool must fail there, not skip.
    assert ci_flag(value) is is_ci


def make_run(source, kind="light", outcome="ok", ago=60, took=2.0):
    ended = timezone.now() - timedelta(seconds=ago)
    return SyncRun.objects.create(
        source=source,
        kind=kind,
        outcome=outcome,
        started=ended - timedelta(seconds=took),
        ended=ended,
        error="boom" if outcome == "failed" else "",
    )


@pytest.fixture
def sources(db):
    make = Source.objects.create
    return {
        "fresh": make(name="fresh", base_url="http://10.1.2.3:8080", secret="sk-hidden-1"),
        "silent": make(name="silent", base_url="https://proxy.example.net", secret="sk-hidden-2"),
        "broken": make(name="broken", base_url="https://other.example.org", secret="sk-hidden-3"),
        "off": make(name="off", base_url="https://off.example.org", enabled=False),
    }


# /healthz


def test_healthz_needs_no_login_and_says_the_database_is_ok(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"database": "ok", "sources": {}}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_reports_every_enabled_source_as_ok_stale_or_failing(client, sources):
    make_run(sources["fresh"], ago=30)
    make_run(sources["silent"], ago=4 * 3600)
    make_run(sources["broken"], ago=600)
    make_run(sources["broken"], outcome="failed", ago=20)
    make_run(sources["broken"], outcome="skipped", ago=10)  # a skipped pass says nothing

    body = client.get("/healthz").json()

    assert set(body["sources"]) == {"fresh", "silent", "broken"}  # not the disabled one
    assert body["sources"]["fresh"]["status"] == "ok"
    assert 29 <= body["sources"]["fresh"]["last_ok_sync_age_s"] < 90
    assert body["sources"]["silent"]["status"] == "stale"
    assert body["sources"]["silent"]["last_ok_sync_age_s"] >= 4 * 3600
    assert body["sources"]["broken"]["status"] == "failing"
    assert 600 <= body["sources"]["broken"]["last_ok_sync_age_s"] < 700


def test_healthz_calls_a_source_that_never_synced_stale(client, sources):
    body = client.get("/healthz").json()

    assert body["sources"]["fresh"] == {"last_ok_sync_age_s": None, "status": "stale"}


def test_healthz_reveals_no_secret_and_no_source_url(client, sources):
    make_run(sources["fresh"])

    text = client.get("/healthz").content.decode()

    for source in sources.values():
        assert source.base_url not in text
        assert source.hook_token not in text
        if source.secret:
            assert source.secret not in text
    assert "10.1.2.3" not in text and "example" not in text


def test_healthz_is_503_when_the_database_is_unreachable(client, db):
    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')

    with mock.patch.object(connection, "cursor", refuse):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"database": "unreachable"}


def test_healthz_costs_the_same_few_queries_however_many_sources(
    client, sources, django_assert_num_queries
):
    for source in sources.values():
        make_run(source)
        make_run(source, kind="full")
    with django_assert_num_queries(3):  # SELECT 1, sources with their last runs, the runs
        client.get("/healthz")


def test_healthz_is_not_redirected_to_https_so_load_balancers_can_check_over_http(
    client, db, settings
):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


# /metrics


def parse_exposition(text):
    """{(name, frozenset of label pairs): value}; fails on anything not in the text format."""
    assert text.endswith("\n")
    samples, typed = {}, set()
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter")
            typed.add(name)
            continue
        match = sample.match(line)
        assert match, f"not a sample line: {line!r}"
        name, _, labels, value = match.groups()
        assert name in typed, f"{name} has no TYPE line before it"
        pairs = []
        rest = labels or ""
        while rest:
            lm = label.match(rest)
            assert lm, f"bad labels in {line!r}"
            raw = lm.group(2)
            unescaped = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), raw)
            pairs.append((lm.group(1), unescaped))
            rest = rest[lm.end() :]
        samples[(name, frozenset(pairs))] = float(value)
    return samples


def get_metrics(client, token=TOKEN):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def metrics_on(settings):
    settings.MJ_METRICS_TOKEN = TOKEN
    settings.MJ_METRICS_CACHE_SECONDS = 0
    return settings


def test_metrics_do_not_exist_without_a_token_set(client, db, settings):
    settings.MJ_METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 404
    assert get_metrics(client, token="").status_code == 404


def test_metrics_want_the_bearer_token(client, db, metrics_on):
    missing = client.get("/metrics")
    wrong = get_metrics(client, token="guess")
    basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"mjsite_" not in response.content
    assert get_metrics(client).status_code == 200


def test_metrics_speak_prometheus_text_format(client, sources, metrics_on):
    fresh = sources["fresh"]
    for n, status in enumerate(["SUCCESS", "SUCCESS", "FAILURE", "IN_PROGRESS"]):
        make_task(fresh, task_id=f"t{n}", status=status)
    make_task(fresh, task_id="odd", status='we"ird\\state\nnext')
    Task.objects.filter(task_id__in=["t0", "t1"]).update(image_state=ImageState.PENDING)
    Source.objects.filter(pk=fresh.pk).update(hooks_received=41, hooks_invalid=2)
    make_run(fresh, kind="full", took=12.5, ago=3600)
    make_run(fresh, kind="light", took=1.5, ago=120)
    make_run(fresh, kind="light", took=0.5, ago=60)
    make_run(sources["broken"], kind="light", outcome="failed", took=3.0)
    make_run(sources["broken"], kind="light", outcome="skipped", took=0.1)
    make_run(sources["silent"], kind="full", took=99, ago=3 * 86400)  # outside the day

    response = get_metrics(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    m = parse_exposition(response.content.decode())

    def value(name, **labels):
        return m[(name, frozenset(labels.items()))]

    assert value("mjsite_tasks", status="SUCCESS") == 2
    assert value("mjsite_tasks", status="FAILURE") == 1
    assert value("mjsite_tasks", status="IN_PROGRESS") == 1
    assert value("mjsite_tasks", status='we"ird\\state\nnext') == 1
    assert value("mjsite_archive_backlog") == 2
    assert value("mjsite_hooks_received_total", source="fresh") == 41
    assert value("mjsite_hooks_invalid_total", source="fresh") == 2
    assert value("mjsite_hooks_received_total", source="broken") == 0
    assert value("mjsite_sync_passes_24h", source="fresh", outcome="ok") == 3
    assert value("mjsite_sync_passes_24h", source="broken", outcome="failed") == 1
    assert value("mjsite_sync_passes_24h", source="broken", outcome="skipped") == 1
    assert ("mjsite_sync_passes_24h", frozenset({("source", "silent"), ("outcome", "ok")})) not in m
    assert value("mjsite_sync_pass_max_seconds_24h", source="fresh", kind="full") == 12.5
    assert value("mjsite_sync_pass_max_seconds_24h", source="fresh", kind="light") == 1.5
    assert value("mjsite_sync_last_pass_seconds", source="fresh", kind="light") == 0.5
    assert value("mjsite_sync_last_pass_seconds", source="silent", kind="full") == 99
    assert value("mjsite_sync_last_pass_failed", source="fresh") == 0
    assert value("mjsite_sync_last_pass_failed", source="broken") == 1
    last_ok = value("mjsite_sync_last_success_timestamp_seconds", source="fresh")
    assert abs(last_ok - (time.time() - 60)) < 30
    assert ("mjsite_sync_last_pass_failed", frozenset({("source", "off")})) not in m
    assert value("mjsite_queued_jobs") >= 0


def test_metrics_reveal_no_secret_and_no_source_url(client, sources, metrics_on):
    text = get_metrics(client).content.decode()

    for source in sources.values():
        assert source.base_url not in text
        assert source.hook_token not in text
        if source.secret:
            assert source.secret not in text


def test_metrics_keep_the_full_table_counts_for_a_while(client, sources, settings, monkeypatch):
    settings.MJ_METRICS_TOKEN = TOKEN
    settings.MJ_METRICS_CACHE_SECONDS = 30
    monkeypatch.setattr(metrics, "CACHE_KEY", f"mjsite:test:metrics:{os.getpid()}:{time.time()}")
    make_task(sources["fresh"], task_id="a", status="SUCCESS")
    try:
        first = parse_exposition(get_metrics(client).content.decode())
        make_task(sources["fresh"], task_id="b", status="SUCCESS")
        second = parse_exposition(get_metrics(client).content.decode())
    finally:
        from django.core.cache import cache

        cache.delete(metrics.CACHE_KEY)
    key = ("mjsite_tasks", frozenset({("status", "SUCCESS")}))
    assert first[key] == second[key] == 1


def test_metrics_cost_a_bounded_number_of_queries(
    client, sources, metrics_on, django_assert_max_num_queries
):
    for source in sources.values():
        make_run(source)
        make_run(source, kind="full")
    # Two counts, sources, two aggregates over the day, four small lookups per enabled
    # source, hooks; the ORM broker's queue size (Redis has none).
    with django_assert_max_num_queries(7 + 4 * 3 + 1):
        assert get_metrics(client).status_code == 200


# purge_tasks


@pytest.fixture
def aged(db, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    source = Source.objects.create(name="old", base_url="http://127.0.0.1:9")
    now = timezone.now()
    rows = {}
    for name, days, status in [
        ("ancient-ok", 400, "SUCCESS"),
        ("ancient-failed", 400, "FAILURE"),
        ("old-ok", 100, "SUCCESS"),
        ("old-running", 100, "IN_PROGRESS"),
        ("recent", 10, "SUCCESS"),
    ]:
        task = make_task(source, task_id=name, status=status)
        Task.objects.filter(pk=task.pk).update(submitted=now - timedelta(days=days))
        TaskEvent.objects.create(task=task, status=status)
        rows[name] = task
    # No submit time from the proxy: its age is when the mirror first saw it.
    nodate = make_task(source, task_id="no-date", status="SUCCESS")
    Task.objects.filter(pk=nodate.pk).update(submitted=None, first_seen=now - timedelta(days=200))
    rows["no-date"] = nodate
    return rows


def purge(*args):
    from io import StringIO

    out = StringIO()
    call_command("purge_tasks", *args, stdout=out)
    return out.getvalue()


def remaining():
    return set(Task.objects.values_list("task_id", flat=True))


def test_purge_tasks_dry_run_says_what_it_would_delete_and_deletes_nothing(aged):
    out = purge("--older-than", "90", "--dry-run")

    assert "would delete 5 tasks submitted before" in out
    assert "(and 4 events)" in out
    assert len(remaining()) == 6


def test_purge_tasks_deletes_old_tasks_with_their_events_in_batches(aged):
    out = purge("--older-than", "90", "--batch-size", "2")

    assert remaining() == {"recent"}
    assert TaskEvent.objects.count() == 1
    # Three transactions of at most two tasks each, never one big one.
    assert re.findall(r"deleted (\d+) tasks so far", out) == ["2", "4", "5"]
    assert out.strip().splitlines()[-1].startswith("deleted 5 tasks submitted before")


def test_purge_tasks_keeps_what_is_newer_than_the_cutoff(aged):
    purge("--older-than", "365")

    assert remaining() == {"old-ok", "old-running", "recent", "no-date"}


def test_purge_tasks_can_be_limited_to_some_statuses(aged):
    purge("--older-than", "90", "--status", "FAILURE", "--status", "IN_PROGRESS,CANCEL")

    assert remaining() == {"ancient-ok", "old-ok", "recent", "no-date"}


def test_purge_tasks_can_be_limited_to_one_source(aged):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:10")
    kept = make_task(other, task_id="other-old")
    Task.objects.filter(pk=kept.pk).update(submitted=timezone.now() - timedelta(days=999))

    purge("--older-than", "90", "--source", "old")

    assert remaining() == {"recent", "other-old"}


def test_purge_tasks_needs_an_age(aged):
    with pytest.raises(CommandError):
        call_command("purge_tasks")
    with pytest.raises(CommandError):
        call_command("purge_tasks", "--older-than", "0")
    assert len(remaining()) == 6


def test_purge_tasks_removes_image_files_no_other_task_uses(aged):
    shared = default_storage.save("images/ab/shared.png", ContentFile(b"png"))
    own = default_storage.save("images/cd/own.png", ContentFile(b"png"))
    preview = default_storage.save(f"previews/{aged['old-ok'].pk}/grid.webp", ContentFile(b"w"))
    Task.objects.filter(pk=aged["ancient-ok"].pk).update(image_file=shared, thumb_file=own)
    Task.objects.filter(pk=aged["old-ok"].pk).update(image_file=preview)
    Task.objects.filter(pk=aged["recent"].pk).update(image_file=shared)  # still in use

    out = purge("--older-than", "90")

    assert default_storage.exists(shared)
    assert not default_storage.exists(own)
    assert not default_storage.exists(preview)
    assert "2 image files" in out


# Production settings, in fresh processes with the environment of a deployment


def test_the_orm_broker_and_local_cache_are_the_default():
    code = (
        "import json\n"
        "conf = settings.Q_CLUSTER\n"
        "cache = settings.CACHES['default']['BACKEND']\n"
        "print(json.dumps([conf.get('orm'), 'redis' in conf, cache]))"
    )
    out = python_settings(code).stdout
    assert json.loads(out) == ["default", False, "django.core.cache.backends.locmem.LocMemCache"]


def test_redis_url_moves_the_queue_and_the_cache_to_redis():
    code = (
        "from django_q.brokers import get_broker\n"
        "print(type(get_broker()).__name__, settings.Q_CLUSTER['name'],"
        " settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION'])"
    )
    out = python_settings(code, REDIS_URL="redis://10.9.9.9:6379/3", Q_CLUSTER_NAME="site2")
    assert out.stdout.split() == [
        "Redis",
        "site2",
        "django.core.cache.backends.redis.RedisCache",
        "redis://10.9.9.9:6379/3",
    ]


def production_env():
    env = {}
    for line in (DEPLOY / "mjsite.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    env["DJANGO_SECRET_KEY"] = "a" * 20 + "-production-secret-" + "b" * 30
    env["DATABASE_URL"] = database_url()
    env.pop("REDIS_URL")  # check --deploy needs no running Redis
    return env


def test_the_example_environment_passes_django_check_deploy(db):
    env = child_env(**production_env())
    result = subprocess.run(
        [PY, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_still_warns_when_hsts_for_subdomains_is_merely_unset(db):
    # Only an explicit "False" in the environment is a decision that silences W005/W021.
    env = production_env()
    del env["DJANGO_HSTS_INCLUDE_SUBDOMAINS"], env["DJANGO_HSTS_PRELOAD"]
    result = subprocess.run(
        [PY, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = set(re.findall(r"\((security\.\w+)\)", result.stdout + result.stderr))
    assert found == {"security.W005", "security.W021"}, result.stdout + result.stderr


def test_the_example_environment_sets_only_variables_mjsite_reads():
    read = (ROOT / "mjsite" / "settings.py").read_text()
    read += (DEPLOY / "gunicorn.conf.py").read_text()
    for name in production_env():
        assert f'"{name}"' in read, f"{name} in mjsite.env.example is read by nothing"


def test_production_security_settings_come_from_the_environment():
    code = (
        "print(settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS,"
        " settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE,"
        " settings.SECURE_PROXY_SSL_HEADER, settings.CSRF_TRUSTED_ORIGINS)"
    )
    on = python_settings(
        code,
        DJANGO_SECURE_SSL_REDIRECT="true",
        DJANGO_HSTS_SECONDS="31536000",
        DJANGO_BEHIND_PROXY="1",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://mj.example.com,https://mj2.example.com",
    ).stdout.strip()
    off = python_settings(code).stdout.strip()
    assert on == (
        "True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https') "
        "['https://mj.example.com', 'https://mj2.example.com']"
    )
    assert off == "False 0 False False None []"


def test_log_format_json_writes_one_object_per_line_to_stdout_with_hook_tokens_masked():
    code = (
        "import logging\n"
        "log = logging.getLogger('tasks.ingest.hooks')\n"
        "log.warning('refused POST /hooks/mj/%s/: %s', 'Sup3rSecretT0ken', 'not JSON')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('pass crashed')\n"
    )
    result = python_settings(code, LOG_FORMAT="json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["level"], x["logger"]) for x in lines] == [
        ("WARNING", "tasks.ingest.hooks"),
        ("ERROR", "tasks.ingest.hooks"),
    ]
    assert lines[0]["message"] == "refused POST /hooks/mj/Sup3…/: not JSON"
    assert "Sup3rSecretT0ken" not in result.stdout + result.stderr
    assert "ZeroDivisionError" in lines[1]["exc"]
    assert result.stderr == ""


# deploy/: gunicorn, nginx, systemd


@pytest.fixture
def gunicorn(transactional_db):
    """Start gunicorn exactly as mjsite-web.service does, on a free port."""
    started = []

    def start(**env):
        port = free_port()
        env.setdefault("DATABASE_URL", database_url())
        env = child_env(
            GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_THREADS="2", **env
        )
        proc = subprocess.Popen(
            [str(Path(PY).parent / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py")],
            cwd="/",  # the config's chdir finds the project, as under systemd
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/healthz")
        except requests.ConnectionError:
            stop(proc)
            pytest.fail("gunicorn did not start:\n" + proc.stdout.read())
        return url, proc

    yield start
    for proc in started:
        stop(proc)


def test_gunicorn_with_the_deploy_config_serves_healthz(gunicorn):
    Source.objects.create(name="prod", base_url="http://127.0.0.1:9")
    url, _ = gunicorn()

    response = requests.get(url + "/healthz", timeout=10)

    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "sources": {"prod": {"last_ok_sync_age_s": None, "status": "stale"}},
    }


def test_gunicorn_answers_503_from_healthz_when_the_database_is_down(gunicorn):
    url, _ = gunicorn(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/gone")

    response = requests.get(url + "/healthz", timeout=10)

    assert response.status_code == 503
    assert response.json() == {"database": "unreachable"}


def test_gunicorn_logs_json_lines_when_asked(gunicorn):
    url, proc = gunicorn(LOG_FORMAT="json")
    requests.get(url + "/healthz", timeout=10)
    stop(proc)

    lines = [line for line in proc.stdout.read().splitlines() if line.strip()]
    assert lines, "gunicorn wrote nothing"
    for line in lines:
        assert json.loads(line)["level"]


def nginx_site(tmp_path, app_port):
    """deploy/nginx.conf with its ports, certificate and log paths moved into tmp_path."""
    need_tool("openssl")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + [
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            tmp_path / "key.pem",
            "-out",
            tmp_path / "cert.pem",
        ],
        check=True,
        capture_output=True,
    )
    http_port, https_port = free_port(), free_port()
    text = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{app_port};",
        "/etc/letsencrypt/live/mj.example.com/fullchain.pem": str(tmp_path / "cert.pem"),
        "/etc/letsencrypt/live/mj.example.com/privkey.pem": str(tmp_path / "key.pem"),
        "/var/log/nginx/": f"{tmp_path}/",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    (tmp_path / "site.conf").write_text(text)
    temp = tmp_path / "temp"
    temp.mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"error_log {tmp_path}/error.log;\npid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {tmp_path}/site.conf;\n}}\n"
    )
    return main, http_port, https_port


def test_nginx_accepts_the_deploy_config(tmp_path):
    nginx = need_tool("nginx")
    main, _, _ = nginx_site(tmp_path, 8000)

    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_in_front_of_gunicorn_never_logs_a_hook_token(gunicorn, tmp_path):
    nginx = need_tool("nginx")
    source = Source.objects.create(name="hooked", base_url="http://127.0.0.1:9")
    url, _ = gunicorn(
        DJANGO_ALLOWED_HOSTS="mj.example.com",
        DJANGO_BEHIND_PROXY="true",
        DJANGO_SECURE_SSL_REDIRECT="true",
        DJANGO_HSTS_SECONDS="60",
    )
    main, http_port, https_port = nginx_site(tmp_path, int(url.rsplit(":", 1)[1]))
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(main), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # A load balancer checks by address: nginx passes it on with the site's name.
        plain = wait_for(f"http://127.0.0.1:{http_port}/healthz")
        tls = {"verify": str(tmp_path / "cert.pem"), "headers": {"Host": "mj.example.com"}}
        hook = f"https://127.0.0.1:{https_port}/hooks/mj/{source.hook_token}/?again=1"
        pushed = requests.post(hook, data=b"not json", timeout=10, **tls)
        redirected = requests.get(
            f"http://127.0.0.1:{http_port}/hooks/mj/{source.hook_token}/",
            allow_redirects=False,
            timeout=10,
        )
        login = requests.get(f"https://127.0.0.1:{https_port}/accounts/login/", timeout=10, **tls)
    finally:
        stop(proc)

    assert plain.status_code == 200 and plain.json()["database"] == "ok"
    # The app got the hook (400: not JSON), over HTTPS as far as it knows: no redirect.
    assert pushed.status_code == 400, pushed.text
    assert redirected.status_code == 301
    assert login.status_code == 200 and "csrftoken" in login.cookies
    # Django saw HTTPS through X-Forwarded-Proto: HSTS and a secure CSRF cookie.
    assert login.headers["Strict-Transport-Security"] == "max-age=60"
    assert next(c for c in login.cookies if c.name == "csrftoken").secure
    log = (tmp_path / "mjsite.access.log").read_text()
    assert source.hook_token not in log
    head = source.hook_token[:4]
    assert f'"POST /hooks/mj/{head}.../ HTTP/' in log
    assert f'"GET /hooks/mj/{head}.../ HTTP/' in log
    assert '"GET /healthz HTTP/1.1" 200' in log
    assert '"GET /accounts/login/ HTTP/' in log


def units():
    found = {}
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(path.read_text())
        found[path.name] = parser
    return found


def in_checkout(path):
    """A path of the production layout (/srv/mjsite, /etc/mjsite) in this checkout."""
    if path == "/etc/mjsite/mjsite.env":
        return DEPLOY / "mjsite.env.example"
    return Path(path.replace("/srv/mjsite", str(ROOT)))


def test_the_systemd_units_start_files_that_exist_in_the_checkout():
    found = units()
    assert set(found) == {"mjsite-web.service", "mjsite-worker.service"}
    for name, unit in found.items():
        service = unit["Service"]
        assert in_checkout(service["WorkingDirectory"]) == ROOT, name
        assert in_checkout(service["EnvironmentFile"]).is_file(), name
        for word in service["ExecStart"].split():
            if word.startswith("/"):
                assert in_checkout(word).exists(), f"{name}: {word} is not in the checkout"
    web = found["mjsite-web.service"]["Service"]["ExecStart"].split()
    assert web[1:] == ["-c", "/srv/mjsite/deploy/gunicorn.conf.py"]
    worker = found["mjsite-worker.service"]["Service"]["ExecStart"].split()
    assert worker[1:] == ["/srv/mjsite/manage.py", "qcluster"]


def test_the_worker_unit_stops_qcluster_with_one_sigterm_and_waits_out_a_pass():
    service = units()["mjsite-worker.service"]["Service"]

    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # the signal to the main process only
    from django.conf import settings

    assert int(service["TimeoutStopSec"]) > settings.Q_CLUSTER["timeout"]


def test_systemd_analyze_verifies_the_units(tmp_path):
    tool = need_tool("systemd-analyze", package="systemd")
    for path in (DEPLOY / "systemd").glob("*.service"):
        text = path.read_text().replace(
            "/etc/mjsite/mjsite.env", str(in_checkout("/etc/mjsite/mjsite.env"))
        )
        (tmp_path / path.name).write_text(text.replace("/srv/mjsite", str(ROOT)))
    result = subprocess.run(
        [tool, "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in result.stderr.splitlines() if "mjsite-" in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_the_readme_deploy_section_names_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert "\n## Deploy\n" in readme
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\bdeploy/[\w./-]+\w", section))
    assert named >= {
        "deploy/gunicorn.conf.py",
        "deploy/nginx.conf",
        "deploy/mjsite.env.example",
        "deploy/systemd/mjsite-web.service",
        "deploy/systemd/mjsite-worker.service",
    }
    for path in named:
        assert (ROOT / path).exists(), path
    for command in ("purge_tasks", "migrate", "collectstatic", "systemctl"):
        assert command in section
