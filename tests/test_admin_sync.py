"""The admin's "Sync now" actions queue a pass for the sync worker instead of running it
inside the web request (a full pass over 100,000 tasks outlasts nginx's 60 s), and link
to the source's sync runs, where the run appears once a worker has taken it.

The job is put on django-q2's ORM broker by the action itself; the test then runs it the
way a qcluster does (pusher: dequeue and unsign; worker; monitor: save and acknowledge),
in this process with django-q2's sync flag set, so it stays in the test's transaction.
"""

import html
import re
import uuid
from datetime import timedelta
from multiprocessing import Value
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.models import Task as QueuedTaskResult
from django_q.monitor import monitor
from django_q.queues import Queue
from django_q.signing import SignedPackage
from django_q.worker import worker

from tasks.models import Source, SyncRun, Task

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:tasks_source_changelist"


@pytest.fixture
def broker():
    """The ORM broker under a queue name of this test's own, whatever REDIS_URL says;
    async_task is not run in sync mode (Q_SYNC) while the action queues."""
    orm = ORM(list_key=f"mjsite-admin-{uuid.uuid4().hex[:8]}")
    with (
        mock.patch("django_q.tasks.get_broker", lambda *args, **kwargs: orm),
        mock.patch.object(Conf, "SYNC", False),
    ):
        yield orm


def run_queued(broker):
    """Run every job on the queue as a qcluster would; return how many ran."""
    ran = 0
    with mock.patch.object(Conf, "SYNC", True):  # keep the test's database connection
        while jobs := broker.dequeue():
            for ack_id, payload in jobs:
                task = SignedPackage.loads(payload)
                task["ack_id"] = ack_id
                tasks, results = Queue(), Queue()
                tasks.put(task)
                tasks.put("STOP")
                worker(tasks, results, Value("f", -1))
                results.put("STOP")
                monitor(results, broker)
                ran += 1
    return ran


def post_action(client, action, *sources):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [s.pk for s in sources]},
        follow=True,
    )


def shown(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def runs_link(message):
    found = re.search(r'<a href="([^"]+)">its sync runs</a>', message)
    assert found, message
    return html.unescape(found.group(1))


def listed_runs(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return list(response.context["cl"].result_list)


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9")


@pytest.fixture
def proxy(start_sim, fault_server):
    """A simulator with 40 tasks, behind a fault server that records every request."""
    sim = start_sim("novicezk", tasks=40)
    fault_server.upstream = sim.url
    return fault_server


def test_a_full_pass_is_queued_not_run_and_the_message_links_its_run(admin_client, proxy, broker):
    source = Source.objects.create(
        name="main", base_url=proxy.url, auth_header="mj-api-secret", secret="s3cret"
    )
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    SyncRun.objects.create(source=other, kind="full", outcome="ok")  # not in the link's list

    response = post_action(admin_client, "full_sync_now", source)

    # Answered at once: nothing was asked of the proxy, no pass started, one job queued.
    assert response.status_code == 200
    assert proxy.requests == []
    assert not SyncRun.objects.filter(source=source).exists()
    assert not Task.objects.exists()
    assert OrmQ.objects.filter(key=broker.list_key).count() == 1
    [(level, message)] = shown(response)
    assert level == "success"
    assert message.startswith("main: full pass queued for the sync worker")
    url = runs_link(message)
    assert url == reverse("admin:tasks_syncrun_changelist") + f"?source__id__exact={source.pk}"
    assert f'<a href="{url}">its sync runs</a>' in response.content.decode()  # a link
    assert listed_runs(admin_client, url) == []  # the operator watches it appear

    assert run_queued(broker) == 1

    run = SyncRun.objects.get(source=source)
    assert (run.kind, run.outcome, run.created) == ("full", "ok", 40), run.error
    assert Task.objects.filter(source=source).count() == 40
    assert proxy.requests_to("/mj/task/list", "GET")  # the full pass, by the worker
    assert listed_runs(admin_client, url) == [run]
    assert not OrmQ.objects.filter(key=broker.list_key).exists()  # acknowledged
    assert QueuedTaskResult.objects.get().success  # django-q2's record of the job


def test_a_light_pass_queued_while_a_pass_runs_says_so_and_is_recorded_skipped(
    admin_client, start_sim, make_source, broker
):
    source = make_source(start_sim("novicezk", tasks=5))
    other = make_source(start_sim("novicezk", tasks=3), name="second")
    # Another worker holds the source's lease: its pass is running.
    Source.objects.filter(pk=source.pk).update(
        lease_owner="elsewhere", lease_until=timezone.now() + timedelta(minutes=4)
    )

    response = post_action(admin_client, "sync_now", source, other)

    messages = dict((m.split(":")[0], m) for _, m in shown(response))
    assert set(messages) == {source.name, "second"}
    assert "light pass queued" in messages[source.name]
    assert "A pass of this source is running now" in messages[source.name]
    assert "recorded as skipped" in messages[source.name]
    assert "running now" not in messages["second"]
    assert not SyncRun.objects.exists()
    assert OrmQ.objects.filter(key=broker.list_key).count() == 2

    assert run_queued(broker) == 2

    skipped = SyncRun.objects.get(source=source)
    assert (skipped.kind, skipped.outcome) == ("light", "skipped")
    assert "another pass of this source is still running" in skipped.error
    assert not Task.objects.filter(source=source).exists()
    assert SyncRun.objects.get(source=other).outcome == "ok"
    assert listed_runs(admin_client, runs_link(messages[source.name])) == [skipped]
    source.refresh_from_db()
    assert source.lease_owner == "elsewhere"  # the running pass keeps its lease


def test_a_full_pass_queued_while_a_pass_runs_says_it_will_wait(admin_client, source, broker):
    Source.objects.filter(pk=source.pk).update(
        lease_owner="elsewhere", lease_until=timezone.now() + timedelta(minutes=4)
    )

    [(level, message)] = shown(post_action(admin_client, "full_sync_now", source))

    assert level == "success"
    assert "this one waits up to 2 minutes for it to end, else it is recorded as skipped" in (
        message
    )


def test_a_disabled_source_gets_no_pass(admin_client, source, broker):
    Source.objects.filter(pk=source.pk).update(enabled=False)

    [(level, message)] = shown(post_action(admin_client, "full_sync_now", source))

    assert (level, message) == ("warning", "main is disabled: no pass queued.")
    assert not OrmQ.objects.exists()


def test_a_viewer_cannot_queue_a_pass(client, django_user_model, source, broker):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_source"))
    client.force_login(viewer)

    page = client.get(reverse(CHANGELIST)).content.decode()
    response = post_action(client, "full_sync_now", source)

    assert 'value="full_sync_now"' not in page
    assert response.status_code == 200  # the list again: no action is offered to post
    assert not shown(response)
    assert not OrmQ.objects.exists()  # no pass queued (tests/test_security.py counts runs)
    assert not SyncRun.objects.exists()
