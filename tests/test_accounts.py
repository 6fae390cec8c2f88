"""Discord accounts (issue 16): synced over real HTTP from the simulator's novicezk and
trueai flavors, their changes kept as events, their credentials never kept anywhere, and
their figures equal to what the tasks say."""

import io
import json
import logging
import random
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tasks.accounts.figures import RUN_SAMPLE, figures_for, local_midnight
from tasks.bootstrap import SCHEDULES, ensure_schedules
from tasks.ingest.credentials import scrub
from tasks.ingest.sync import accounts_pass, sync_source, sync_source_accounts
from tasks.models import Account, AccountEvent, AccountSync, Source, Task
from tasks.reports.overview import percentiles
from tests.conftest import make_task

ADMIN_TOKEN = "adm-token-for-tests"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff(db):
    user = User.objects.create_superuser("boss", "", "pw-boss-123")
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def viewer(db):
    user = User.objects.create_user("viewer", password="pw-viewer-123")
    user.groups.add(Group.objects.get(name="viewer"))
    c = Client()
    c.force_login(user)
    return c


def start(start_sim, make_source, flavor, admin_token=ADMIN_TOKEN, tasks=40):
    sim = start_sim(flavor, tasks=tasks, admin_token=ADMIN_TOKEN)
    source = make_source(sim, admin_token=admin_token if flavor == "trueai" else "")
    return sim, source


def control(sim, channel, action, **body):
    answer = requests.post(f"{sim.url}/_sim/accounts/{channel}/{action}", json=body, timeout=5)
    assert answer.status_code == 200


# The scrubber


def test_the_scrubber_drops_every_credential_looking_key_at_any_depth_and_case():
    record = {
        "id": "1",
        "channelId": "1",
        "USERTOKEN": "a",
        "botToken": "b",
        "Cookie": "c",
        "loginAccount": "d",
        "loginPassword": "e",
        "login2fa": "f",
        "cfUrl": "g",
        "cfHashUrl": "h",
        "permanentInvitationLink": "i",
        "subChannels": ["j"],
        "subChannelValues": {"k": "l"},
        "mySecret": "m",
        "Authorization": "n",
        "properties": {"deep": [{"x-Api-Key": "o", "keep": 1}], "Fast Time Remaining": "2h"},
        "enable": True,
    }
    assert scrub(record) == {
        "id": "1",
        "channelId": "1",
        "properties": {"deep": [{"keep": 1}], "Fast Time Remaining": "2h"},
        "enable": True,
    }


# The sync, over HTTP


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_a_full_pass_syncs_the_accounts_with_their_health(start_sim, make_source, flavor):
    sim, source = start(start_sim, make_source, flavor)
    run = sync_source(source, full=True)
    assert run.outcome == "ok"
    accounts = {a.channel_id: a for a in Account.objects.filter(source=source)}
    assert set(accounts) == {a.channel for a in sim.accounts.list}
    assert all(a.enabled and a.gone_since is None for a in accounts.values())
    assert AccountEvent.objects.filter(account__source=source).count() == 3
    status = AccountSync.objects.get(source=source)
    assert status.available and status.listed == 3
    # Running and queued: what the proxy's queue holds, per account (novicezk counts
    # them from /mj/task/queue; trueai reports them).
    running, queued = sim.accounts.running_and_queued()
    for channel, account in accounts.items():
        assert account.running == running.get(channel, 0)
        assert account.queued == queued.get(channel, 0)
    if flavor == "trueai":
        first = accounts[sim.accounts.list[0].channel]
        assert first.name == "sim account 1"
        assert first.day_draw_limit == 200 and first.today_draws == 3
        assert first.fast_time_remaining.startswith("11.25/15.0")
    # Tasks link to their accounts by channel id.
    linked = set(Task.objects.filter(source=source).values_list("account", flat=True))
    assert linked and linked <= set(accounts)


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_the_schedule_syncs_accounts_within_one_period(
    start_sim, make_source, flavor, settings, monkeypatch
):
    from django_q.conf import Conf
    from django_q.models import Schedule

    settings.MJ_ACCOUNT_MINUTES = 3
    ensure_schedules()
    schedule = Schedule.objects.get(name="mjsite: accounts")
    assert (schedule.func, schedule.minutes) == (SCHEDULES["mjsite: accounts"][0], 3)
    sim, source = start(start_sim, make_source, flavor)
    monkeypatch.setattr(Conf, "SYNC", True)  # the queued job runs here, as a worker would
    accounts_pass()
    assert Account.objects.filter(source=source).count() == 3


@pytest.mark.parametrize("flavor", ["novicezk", "trueai"])
def test_disabling_an_account_shows_the_reason_an_event_and_the_source_warning(
    start_sim, make_source, flavor, viewer
):
    sim, source = start(start_sim, make_source, flavor)
    sync_source_accounts(source.pk)
    first = sim.accounts.list[0].channel
    control(sim, first, "disable", reason="banned by Discord <script>")
    sync_source_accounts(source.pk)
    account = Account.objects.get(source=source, channel_id=first)
    assert not account.enabled and account.disabled_reason == "banned by Discord <script>"
    assert account.state == "disabled"
    last = account.events.order_by("-seen", "-pk").first()
    assert not last.enabled and last.disabled_reason == "banned by Discord <script>"
    assert Account.objects.sources_without_enabled_account() == []
    page = viewer.get("/discord-accounts/").content.decode()
    assert "banned by Discord &lt;script&gt;" in page and "<script>" not in page
    assert "account-warning" not in page

    for other in sim.accounts.list[1:]:
        control(sim, other.channel, "disable")
    sync_source_accounts(source.pk)
    assert Account.objects.sources_without_enabled_account() == [source.name]
    page = viewer.get("/discord-accounts/").content.decode()
    assert "account-warning" in page and "no enabled Discord account" in page
    assert "no enabled account" in viewer.get("/").content.decode()

    # Enabled again: another event, and the warning goes.
    control(sim, first, "enable")
    sync_source_accounts(source.pk)
    assert account.events.count() == 3
    assert Account.objects.sources_without_enabled_account() == []


def test_a_trueai_account_out_of_fast_time_is_marked_exhausted(start_sim, make_source, viewer):
    sim, source = start(start_sim, make_source, "trueai")
    sync_source_accounts(source.pk)
    second = sim.accounts.list[1].channel
    control(sim, second, "exhaust")
    sync_source_accounts(source.pk)
    account = Account.objects.get(source=source, channel_id=second)
    assert account.fast_exhausted and account.state == "exhausted"
    assert account.fast_time_remaining.startswith("0.00/15.0")
    assert account.events.order_by("-pk").first().fast_exhausted
    assert "fast time exhausted" in viewer.get("/discord-accounts/").content.decode()


def test_the_simulator_disables_and_exhausts_accounts_on_a_schedule(start_sim, make_source, clock):
    sim = start_sim("trueai", admin_token=ADMIN_TOKEN, disable_account_after=60,
                    exhaust_account_after=120)  # fmt: skip
    source = make_source(sim, admin_token=ADMIN_TOKEN)
    sync_source_accounts(source.pk)
    assert Account.objects.filter(enabled=True, fast_exhausted=False).count() == 3
    clock.advance(121)
    sync_source_accounts(source.pk)
    first, second = (a.channel for a in sim.accounts.list[:2])
    assert not Account.objects.get(channel_id=first).enabled
    assert Account.objects.get(channel_id=second).fast_exhausted


def test_an_account_no_longer_listed_is_marked_gone(start_sim, make_source):
    sim, source = start(start_sim, make_source, "novicezk")
    sync_source_accounts(source.pk)
    dropped = sim.accounts.list.pop()
    sync_source_accounts(source.pk)
    account = Account.objects.get(channel_id=dropped.channel)
    assert account.gone_since is not None and account.state == "gone"
    assert account.events.order_by("-pk").first().gone
    sim.accounts.list.append(dropped)
    sync_source_accounts(source.pk)
    account.refresh_from_db()
    assert account.gone_since is None and account.events.count() == 3


def test_a_trueai_source_without_an_admin_token_syncs_its_tasks_and_says_why(
    start_sim, make_source, viewer
):
    sim, source = start(start_sim, make_source, "trueai", admin_token="")
    run = sync_source(source, full=True)
    assert run.outcome == "ok" and run.created > 0
    status = AccountSync.objects.get(source=source)
    assert not status.available and "admin token" in status.reason
    assert not Account.objects.exists()
    assert not any(path.startswith("/mj/admin") for _, path, _ in sim.requests_log)
    assert "admin token" in viewer.get("/discord-accounts/").content.decode()


def test_a_wrong_admin_token_is_not_available_and_the_tasks_still_sync(start_sim, make_source):
    sim, source = start(start_sim, make_source, "trueai", admin_token="not-the-admin")
    run = sync_source(source, full=True)
    assert run.outcome == "ok"
    status = AccountSync.objects.get(source=source)
    assert not status.available
    assert "401" in status.reason and "admin token" in status.reason


@pytest.mark.parametrize("flavor", ["relay", "trueai"])
def test_a_proxy_without_an_account_list_is_not_available_once(start_sim, make_source, flavor):
    sim = start_sim(flavor, tasks=5)
    # No admin token: trueai's /mj/account/list is tried (404); a relay is not asked.
    source = make_source(sim, kind="relay" if flavor == "relay" else "auto")
    assert sync_source(source, full=True).outcome == "ok"
    sync_source(source, full=True)
    assert AccountSync.objects.filter(source=source).count() == 1
    status = AccountSync.objects.get(source=source)
    assert not status.available and status.reason.startswith("not available: ")
    assert ("relay does not list" if flavor == "relay" else "404") in status.reason


def test_a_proxy_that_is_down_fails_the_accounts_not_the_caller(db):
    source = Source.objects.create(name="down", base_url="http://127.0.0.1:9")
    status = sync_source_accounts(source.pk)
    assert not status.available and "cannot connect" in status.reason


# Secrets never stored


def test_no_credential_lands_in_the_database_logs_pages_exports_or_api(
    start_sim, make_source, staff, viewer, caplog
):
    caplog.set_level(logging.DEBUG)
    sims = []
    for flavor in ("novicezk", "trueai"):
        sim, source = start(start_sim, make_source, flavor)
        sims.append(sim)
        sync_source(source, full=True)
        control(sim, sim.accounts.list[0].channel, "disable", reason="captcha")
        sync_source_accounts(source.pk)
    credentials = [value for sim in sims for value in sim.accounts.credential_values()]
    assert len(credentials) == 2 * 3 * 11

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    texts = {"database": dump.getvalue(), "logs": caplog.text}
    assert '"model": "tasks.account"' in texts["database"]
    pages = ["/", "/tasks/", "/discord-accounts/", "/tasks/export.csv", "/tasks/export.jsonl"]
    pages += ["/mj/task/list", "/mj/task/queue", "/admin/tasks/account/",
              "/admin/tasks/accountevent/", "/admin/tasks/syncrun/"]  # fmt: skip
    for pk in Account.objects.values_list("pk", flat=True):
        pages += [f"/discord-accounts/{pk}/", f"/admin/tasks/account/{pk}/change/"]
    for path in pages:
        for client in (staff, viewer):
            answer = client.get(path)
            assert answer.status_code == (200 if client is staff else answer.status_code), path
            assert answer.status_code in (200, 302), path  # viewers are no staff: the admin says no
            body = answer.getvalue() if answer.streaming else answer.content
            texts[f"{path} ({answer.status_code})"] = body.decode()
    assert "sim account 1" in texts["/discord-accounts/ (200)"]
    for where, text in texts.items():
        leaked = [value for value in credentials if value in text]
        assert not leaked, f"{where}: {leaked}"


# Figures


def test_per_account_figures_equal_what_the_tasks_say(db, viewer):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    channels = ["1100000000000000001", "1100000000000000002"]
    for channel in channels:
        Account.objects.create(source=source, account_id=channel, channel_id=channel)
    now = timezone.now()
    rng = random.Random(16)
    made = []
    for n in range(400):
        submitted = now - timedelta(minutes=rng.randrange(10 * 24 * 60))
        started = submitted + timedelta(seconds=rng.randrange(1, 60))
        status = rng.choice(["SUCCESS", "SUCCESS", "FAILURE", "CANCEL", "IN_PROGRESS"])
        made.append(
            make_task(
                source,
                task_id=f"17000000000{n:05d}",
                account=rng.choice(channels + [""]),
                mode=rng.choice(["fast", "relax", "turbo", ""]),
                status=status,
                submitted=submitted,
                started=started,
                finished=started + timedelta(seconds=rng.randrange(10, 300)),
            )
        )
    found = figures_for(channels, now)
    midnight = local_midnight(now)
    for channel in channels:
        mine = [t for t in made if t.account == channel]
        week = Counter(t.status for t in mine if t.submitted >= now - timedelta(days=7))
        day = Counter(t.status for t in mine if t.submitted >= now - timedelta(hours=24))
        today = Counter(t.mode for t in mine if t.submitted >= midnight)
        f = found[channel]
        assert (f.week, f.day, f.today) == (week, day, today)
        finished = day["SUCCESS"] + day["FAILURE"] + day["CANCEL"]
        assert f.failure_24h == day["FAILURE"] / finished
        assert f.success_7d == week["SUCCESS"] / (
            week["SUCCESS"] + week["FAILURE"] + week["CANCEL"]
        )
        newest = sorted(mine, key=lambda t: t.submitted, reverse=True)
        assert f.last_task.task_id == newest[0].task_id
        runs = [(t.finished - t.started).total_seconds() for t in newest if t.status == "SUCCESS"]
        assert f.run_p50 == percentiles(runs[:RUN_SAMPLE])["p50"]
    page = viewer.get("/discord-accounts/").content.decode()
    f = found[channels[0]]
    assert f"{f.success_24h * 100:.1f}% / {f.failure_24h * 100:.1f}%" in page


# The pages


def test_the_pages_need_a_login_and_survive_bad_input(db, viewer, client):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    account = Account.objects.create(source=source, account_id="a1", channel_id="1")
    assert client.get("/discord-accounts/").status_code == 302
    assert client.get(f"/discord-accounts/{account.pk}/").status_code == 302
    for query in ("?sort=bogus", "?sort=-state", "?page=abc", "?page=-1", "?page=99999",
                  "?sort=%00"):  # fmt: skip
        assert viewer.get("/discord-accounts/" + query).status_code == 200, query
    assert viewer.get(f"/discord-accounts/{account.pk}/").status_code == 200
    assert viewer.get("/discord-accounts/99999999999999999999999/").status_code == 404
    assert viewer.get("/discord-accounts/12345/").status_code == 404
    # Viewers read; nothing here changes anything.
    assert viewer.post("/discord-accounts/").status_code == 405
    assert viewer.post(f"/discord-accounts/{account.pk}/").status_code == 405
    assert Account.objects.count() == 1


def test_the_list_sorts_pages_by_100_and_costs_the_same_queries_for_any_size(
    db, viewer, django_assert_num_queries
):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    Account.objects.bulk_create(
        Account(source=source, account_id=f"a{n:03d}", channel_id=f"9{n:03d}", name=f"acc {n:03d}")
        for n in range(130)
    )
    Account.objects.filter(name="acc 007").update(enabled=False)
    page = viewer.get("/discord-accounts/?sort=-name").content.decode()
    assert page.count('class="account-row') == 100
    assert page.index("acc 129") < page.index("acc 100")
    assert "page=2" in page
    second = viewer.get("/discord-accounts/?sort=-name&page=2").content.decode()
    assert second.count('class="account-row') == 30
    by_state = viewer.get("/discord-accounts/?sort=-state").content.decode()
    assert by_state.index("acc 007") < by_state.index("acc 129")  # disabled ones first
    # session, user, count, the page of accounts, figures (2), warnings, the sources'
    # secrets (the masker) and the sources whose accounts are not available
    with django_assert_num_queries(9):
        viewer.get("/discord-accounts/")


def test_the_detail_page_shows_fields_timeline_chart_and_a_link_to_its_tasks(db, viewer):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    account = Account.objects.create(
        source=source, account_id="a1", channel_id="1100", name="main acc", enabled=False,
        disabled_reason="banned", raw=json.dumps({"id": "a1", "remark": "main acc"}),
    )  # fmt: skip
    AccountEvent.objects.create(account=account, enabled=False, locked=False,
                                fast_exhausted=False, disabled_reason="banned")  # fmt: skip
    make_task(source, account="1100", submitted=timezone.now())
    page = viewer.get(f"/discord-accounts/{account.pk}/").content.decode()
    assert "/tasks/?account=1100" in page
    assert 'class="chart"' in page and "banned" in page and "main acc" in page
    listed = viewer.get("/tasks/?account=1100").content.decode()
    assert "1700000000000001" in listed
