"""Alerts (issue 18): rules fire once, notify once through apprise (a real JSON webhook on
loopback) or Django's email, resolve once, retry a failed delivery; secrets never shown."""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tasks.alerts.incidents import evaluate
from tasks.ingest.sync import sync_source
from tasks.models import AlertRule, Channel, Delivery, Incident, Task
from tasks.simulator import Simulator
from tests.test_crash_safety import database_url

ROOT = Path(__file__).resolve().parent.parent
HOOK_SECRET = "hook-path-Zq81xK"  # the webhook URL's secret part


class Receiver:
    """A JSON webhook on loopback: records each POST, answers the statuses it is given."""

    def __init__(self):
        self.received = []
        self.statuses = []  # answered in turn, then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(json.loads(body or b"{}"))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/{HOOK_SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self):
        return [r.get("title", "") for r in self.received]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def check_alerts_command(receiver):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "LOG_"))}
    env.update(
        DATABASE_URL=database_url(),
        MJ_ALERT_URLS=receiver.url,
        MJ_PUBLIC_URL="https://mj.example.com",
        LOG_LEVEL="INFO",
    )
    return [sys.executable, "manage.py", "check_alerts"], env


def check_alerts(receiver):
    cmd, env = check_alerts_command(receiver)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def sync_passes(source, n=1):
    for _ in range(n):
        sync_source(source)


@pytest.fixture
def sim_source(start_sim, make_source):
    sim = start_sim(tasks=5)
    source = make_source(sim, name="main")
    sync_source(source, full=True)
    return sim, source


@pytest.mark.django_db(transaction=True)
def test_a_stopped_proxy_opens_one_incident_and_its_return_resolves_it(sim_source, receiver, clock):
    sim, source = sim_source
    port = int(sim.url.rsplit(":", 1)[1])
    sim.stop()
    sync_passes(source, 3)

    first = check_alerts(receiver)
    second = check_alerts(receiver)

    assert "opened: sync_failing on main" in first
    assert "open: sync_failing on main" in second
    assert len(receiver.received) == 1
    message = receiver.received[0]
    assert "Sync failing on source main" in message["title"]
    assert "the last 3 sync passes of main failed" in message["message"]
    assert "https://mj.example.com/admin/tasks/syncrun/?source__id__exact=" in message["message"]
    assert Incident.objects.filter(resolved__isnull=True).count() == 1

    back = Simulator(secret=sim.secret, tasks=5, seed=7, clock=clock).start(port=port)
    try:
        sync_passes(source)
        third = check_alerts(receiver)
        fourth = check_alerts(receiver)
    finally:
        back.stop()
    assert "resolved: sync_failing on main" in third
    assert "resolved" not in fourth
    assert len(receiver.received) == 2
    assert "resolved" in receiver.received[1]["title"]
    assert "Resolved at" in receiver.received[1]["message"]
    assert Incident.objects.get().resolved is not None
    assert HOOK_SECRET not in first + second + third + fourth


@pytest.mark.django_db(transaction=True)
def test_three_evaluations_at_once_send_one_notification_of_each(sim_source, receiver, clock):
    if connection.vendor != "postgresql":
        pytest.skip("three writers at once need PostgreSQL; run with DATABASE_URL=postgres://")
    sim, source = sim_source
    port = int(sim.url.rsplit(":", 1)[1])
    Channel.objects.create(name="default", url=receiver.url)
    sim.stop()
    sync_passes(source, 3)

    def three_at_once():
        cmd, env = check_alerts_command(receiver)
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs)
        return "".join(outs)

    opened = three_at_once()
    assert opened.count("opened: sync_failing") == 1
    assert len(receiver.received) == 1

    back = Simulator(secret=sim.secret, tasks=5, seed=7, clock=clock).start(port=port)
    try:
        sync_passes(source)
        resolved = three_at_once()
    finally:
        back.stop()
    assert resolved.count("resolved: sync_failing") == 1
    assert len(receiver.received) == 2
    assert Delivery.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_receiver_answering_500_is_retried_and_the_page_shows_failed_then_sent(
    sim_source, receiver, admin_client
):
    sim, source = sim_source
    receiver.statuses = [500]
    sim.stop()
    sync_passes(source, 3)

    check_alerts(receiver)
    delivery = Delivery.objects.get()
    assert delivery.state == "failed" and delivery.attempts == 1
    assert delivery.next_try > timezone.now()
    page = admin_client.get(reverse("alerts:list")).content.decode()
    assert "Failed" in page
    assert HOOK_SECRET not in page and HOOK_SECRET not in delivery.error

    check_alerts(receiver)  # the retry is not due yet
    assert len(receiver.received) == 1
    Delivery.objects.update(next_try=timezone.now() - timedelta(seconds=1))  # its backoff passed
    logs = check_alerts(receiver)

    delivery.refresh_from_db()
    assert delivery.state == "sent" and delivery.attempts == 2
    assert len(receiver.received) == 2
    page = admin_client.get(reverse("alerts:list")).content.decode()
    assert "Sent" in page and "2 attempts" in page
    assert HOOK_SECRET not in logs


@pytest.mark.django_db
def test_a_failure_rate_spike_fires_the_failure_rule_by_email(
    start_sim, make_source, clock, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    Channel.objects.create(name="ops", url="mailto:ops@example.com")
    sim = start_sim(tasks=0)
    source = make_source(sim, name="spiky")
    sim.failure_rate = 1.0
    for _ in range(12):
        sim.submit_random(clock.now_ms())
    clock.advance(120)  # every task has finished, failed
    sync_source(source, full=True)

    changes = evaluate()

    assert [(c.what, c.incident.rule.key) for c in changes] == [("opened", "failure_rate")]
    assert "12 of 12 tasks of spiky" in changes[0].incident.summary
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert "Many tasks failing on source spiky" in mail.outbox[0].subject
    assert "/tasks/?source=spiky&status=FAILURE" in mail.outbox[0].body


@pytest.mark.django_db
def test_normal_failures_do_not_fire_the_failure_rule(start_sim, make_source, clock):
    sim = start_sim(tasks=0)
    source = make_source(sim, name="calm")
    sim.failure_rate = 0.0
    for _ in range(12):
        sim.submit_random(clock.now_ms())
    clock.advance(120)
    sync_source(source, full=True)

    assert [c for c in evaluate() if c.incident.rule.key == "failure_rate"] == []


def stuck_record(task_id, clock):
    return {
        "id": task_id,
        "action": "IMAGINE",
        "status": "IN_PROGRESS",
        "progress": "0%",
        "prompt": "a cat",
        "submitTime": clock.now_ms() - 3_600_000,
        "startTime": clock.now_ms() - 3_500_000,
    }


@pytest.mark.django_db
def test_stuck_tasks_fire_and_a_threshold_changed_in_the_admin_applies_next_time(
    start_sim, make_source, clock, admin_client
):
    sim = start_sim(tasks=0)
    source = make_source(sim, name="slow")
    for n in range(3):
        sim.put(stuck_record(f"17000000000000{n:02d}", clock))
    sync_source(source, full=True)
    # The proxy has said nothing new about them for 40 minutes.
    Task.objects.update(last_changed=timezone.now() - timedelta(minutes=40))

    changes = evaluate()
    stuck = [c for c in changes if c.incident.rule.key == "stuck_tasks"]
    assert [c.what for c in stuck] == ["opened"]
    incident = stuck[0].incident
    assert "3 tasks of slow unfinished and unchanged for more than 30 minutes" in incident.summary
    listed = admin_client.get(incident.link)
    assert listed.status_code == 200
    assert all(f"17000000000000{n:02d}".encode() in listed.content for n in range(3))

    rule = AlertRule.objects.get(key="stuck_tasks")
    form = admin_client.get(reverse("admin:tasks_alertrule_change", args=[rule.pk]))
    assert b'name="minutes"' in form.content
    answer = admin_client.post(
        reverse("admin:tasks_alertrule_change", args=[rule.pk]),
        {"enabled": "on", "repeat_hours": "6", "minutes": "60"},
    )
    assert answer.status_code == 302
    rule.refresh_from_db()
    assert rule.params == {"minutes": 60}

    assert [(c.what, c.incident.rule.key) for c in evaluate()] == [("resolved", "stuck_tasks")]


@pytest.mark.django_db
def test_a_switched_off_rule_never_fires(start_sim, make_source, clock):
    sim = start_sim(tasks=0)
    source = make_source(sim, name="slow")
    sim.put(stuck_record("1700000000000001", clock))
    sync_source(source, full=True)
    Task.objects.update(last_changed=timezone.now() - timedelta(minutes=40))
    AlertRule.objects.filter(key="stuck_tasks").update(enabled=False)

    assert evaluate() == []


@pytest.mark.django_db
def test_a_source_without_hook_calls_is_never_called_silent(sim_source):
    sim, source = sim_source
    sim.submit()
    sync_source(source, full=True)
    assert [c for c in evaluate() if c.incident.rule.key == "hook_silent"] == []

    source.last_hook_at = timezone.now() - timedelta(hours=2)
    source.hooks_received = 5
    source.save()
    sim.submit()
    sync_source(source, full=True)
    silent = [c for c in evaluate() if c.incident.rule.key == "hook_silent"]
    assert [c.what for c in silent] == ["opened"]


@pytest.mark.django_db
def test_an_incident_notifies_again_after_the_repeat_interval(sim_source, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sim, source = sim_source
    Channel.objects.create(name="ops", url="mailto:ops@example.com")
    AlertRule.objects.exclude(key="sync_failing").update(enabled=False)
    sim.stop()
    sync_passes(source, 3)
    evaluate()
    evaluate(timezone.now() + timedelta(hours=1))
    assert len(mail.outbox) == 1
    evaluate(timezone.now() + timedelta(hours=6, minutes=1))
    assert len(mail.outbox) == 2
    assert "still open" in mail.outbox[1].subject


@pytest.mark.django_db
def test_no_channel_url_reaches_a_page_an_export_or_the_admin(
    sim_source, receiver, admin_client, client, django_user_model
):
    sim, source = sim_source
    Channel.objects.create(name="default", url=receiver.url)
    receiver.statuses = [500]
    sim.stop()
    sync_passes(source, 3)
    evaluate()
    channel = Channel.objects.get()
    viewer = django_user_model.objects.create_user("viewer1", password="pw-viewer-1")
    client.force_login(viewer)
    pages = [
        admin_client.get(reverse("alerts:list")),
        admin_client.get(reverse("tasks:overview")),
        admin_client.get(reverse("admin:tasks_channel_changelist")),
        admin_client.get(reverse("admin:tasks_channel_change", args=[channel.pk])),
        admin_client.get(reverse("admin:tasks_incident_changelist")),
        admin_client.get(reverse("admin:tasks_incident_change", args=[Incident.objects.get().pk])),
        admin_client.get(reverse("tasks:export_csv")),
        client.get(reverse("alerts:list")),
    ]
    for page in pages:
        assert page.status_code == 200
        body = b"".join(page.streaming_content) if page.streaming else page.content
        assert HOOK_SECRET.encode() not in body
        assert receiver.url.encode() not in body
    overview = pages[1].content.decode()
    assert "1 open incident" in overview and "Sync failing" in overview


@pytest.mark.django_db
def test_the_send_a_test_action_sends_and_a_failure_is_said_masked(receiver, admin_client):
    channel = Channel.objects.create(name="default", url=receiver.url)
    changelist = reverse("admin:tasks_channel_changelist")
    post = {"action": "send_test", "_selected_action": [channel.pk]}

    sent = admin_client.post(changelist, post, follow=True)
    receiver.statuses = [500]
    failed = admin_client.post(changelist, post, follow=True)

    assert "efault: test sent." in sent.content.decode()  # the admin capitalises it
    assert "efault: the test failed: " in failed.content.decode()
    assert HOOK_SECRET not in failed.content.decode()
    assert [r["title"] for r in receiver.received] == ["[mjsite] test notification"] * 2


@pytest.mark.django_db
def test_a_channel_url_edited_in_the_admin_is_kept_when_left_empty(admin_client):
    channel = Channel.objects.create(name="ops", url="json://127.0.0.1:9/secret-path-abc")
    url = reverse("admin:tasks_channel_change", args=[channel.pk])
    answer = admin_client.post(url, {"name": "ops", "url": "", "enabled": "on"})
    assert answer.status_code == 302
    channel.refresh_from_db()
    assert channel.url == "json://127.0.0.1:9/secret-path-abc"


def test_mj_alert_urls_makes_the_channel_default_on_migrate(db, settings):
    from tasks.bootstrap import ensure_alert_channel

    settings.MJ_ALERT_URLS = "json://127.0.0.1:9/x-secret-path"
    ensure_alert_channel()
    ensure_alert_channel()
    channel = Channel.objects.get()
    assert (channel.name, channel.url) == ("default", settings.MJ_ALERT_URLS)
    assert channel.rules.count() == 0 and channel.sources.count() == 0  # every rule and source


def test_email_url_sets_djangos_smtp_settings():
    from mjsite.settings import email_from_url

    assert email_from_url("smtp+tls://me%40x.com:p%40ss@mail.example.com:587") == {
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "me@x.com",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
    }
    assert settings.EMAIL_TIMEOUT > 0


def synced_account(source, **fields):
    from tasks.models import Account, AccountSync

    AccountSync.objects.get_or_create(source=source, defaults={"available": True})
    fields.setdefault("account_id", f"11000000000000000{Account.objects.count():02d}")
    return Account.objects.create(source=source, **fields)


@pytest.mark.django_db
def test_account_rules_fire_for_a_disabled_account_none_left_and_low_fast_time():
    from tasks.models import Source

    source = Source.objects.create(name="acc", base_url="http://127.0.0.1:9")
    banned = synced_account(source, name="banned", enabled=False, disabled_reason="Banned")
    low = synced_account(source, name="low", fast_time_remaining="0.25/15.0 hours (1.67%)")
    synced_account(source, name="plenty", fast_time_remaining="12.5/15.0 hours (83.33%)")

    opened = {(c.incident.rule.key, c.incident.key) for c in evaluate()}

    assert opened == {
        ("account_disabled", f"account:{banned.pk}"),
        ("fast_time_low", f"account:{low.pk}"),
    }
    source.accounts.update(enabled=False)
    keys = {(c.what, c.incident.rule.key) for c in evaluate()}
    assert ("opened", "no_enabled_account") in keys
    assert ("resolved", "fast_time_low") in keys  # a disabled account's fast time is moot


@pytest.mark.django_db
def test_account_rules_never_fire_for_a_source_without_an_accounts_endpoint():
    from tasks.models import Account, AccountSync, Source

    source = Source.objects.create(name="plain", base_url="http://127.0.0.1:9")
    AccountSync.objects.create(source=source, available=False)
    Account.objects.create(source=source, account_id="1", enabled=False, fast_exhausted=True)

    assert evaluate() == []


@pytest.mark.django_db(transaction=True)
def test_evaluations_that_all_read_before_any_writes_still_notify_once(
    sim_source, settings, monkeypatch
):
    """Three evaluations in threads, held at a barrier once each has read a rule's open
    incidents: every one of them sees the same state, then all write."""
    from django.db import connections

    from tasks.alerts import incidents

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    sim, source = sim_source
    Channel.objects.create(name="ops", url="mailto:ops@example.com")
    AlertRule.objects.exclude(key="sync_failing").update(enabled=False)
    barrier = threading.Barrier(3)
    read = incidents.open_incidents_of

    def read_then_wait(row):
        found = read(row)
        barrier.wait(timeout=60)
        return found

    monkeypatch.setattr(incidents, "open_incidents_of", read_then_wait)

    def three_at_once():
        def run():
            try:
                evaluate()
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    sim.stop()
    sync_passes(source, 3)
    three_at_once()
    assert Incident.objects.count() == 1
    assert [m.subject for m in mail.outbox] == ["[mjsite] Sync failing on source main"]

    SyncRun = source.sync_runs.model
    SyncRun.objects.create(source=source, kind="light", outcome="ok", ended=timezone.now())
    three_at_once()
    assert Incident.objects.get().resolved is not None
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "[mjsite] resolved: Sync failing on source main"
