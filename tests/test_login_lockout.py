"""Login throttling (django-axes): a username is locked after 10 wrong passwords.

Real POSTs to the site's login and the admin's, through the whole middleware stack (and
once in Chromium, under the site's CSP). The lock is by username, summed over every
address: failures on either login page count, and rotating addresses does not help. The
cool-off is moved by moving the attempts' times back, as if the minutes had passed. API
tokens are not passwords: wrong ones lock nobody, and a locked user's token still works.
"""

import io
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from django.test import Client
from django.urls import reverse

from tasks.api.tokens import create_token

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside the browser test

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-lockout-123"
WRONG = "pw-wrong-000"
LIMIT = 10  # the site's default (MJ_LOGIN_FAILURE_LIMIT)
COOLOFF = timedelta(minutes=15)  # the site's default (MJ_LOGIN_COOLOFF_MINUTES)
SITE = "/accounts/login/"
ADMIN = "/admin/login/"
API = "/mj/task/list"


@pytest.fixture(autouse=True)
def site_defaults(settings):
    # The defaults, whatever the environment running the tests sets; the environment's
    # own effect is test_the_limit_and_the_cool_off_come_from_the_environment.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOLOFF


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True)


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password=PASSWORD, is_staff=True)


def sign_in(client, url, username, password, **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def signed_in_as(client):
    """Who the client's session belongs to, asked of a page that needs a login."""
    response = client.get(reverse("tasks:list"))
    if response.status_code != 200:
        return None
    return response.context["user"].get_username()


def fail(client, url, username, times, **extra):
    """`times` wrong passwords; the statuses the login page answered with."""
    return [sign_in(client, url, username, WRONG, **extra).status_code for _ in range(times)]


def cool_off_passes(by):
    """Move every failed attempt back in time, as if `by` had passed since."""
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)


def assert_lockout_page(response, username="alice"):
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    text = re.sub(r"\s+", " ", response.content.decode())
    assert "Too many failed sign-in attempts" in text
    assert f"the account “{username}” is locked for up to 15 minutes" in text
    assert "Wait 15 minutes, then sign in with the right password" in text
    assert f"python manage.py axes_reset_username {username}" in text
    assert f'href="{SITE}"' in text  # the way back to the sign-in page
    # The site's Content-Security-Policy, and nothing on the page it would block.
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\ssrc=)", text)
    assert "<style" not in text and " style=" not in text
    assert not re.search(r"\son\w+=", text)


@pytest.mark.parametrize("url", [SITE, ADMIN])
def test_ten_wrong_passwords_lock_the_username_even_against_the_right_one(url, alice):
    client = Client()

    statuses = fail(client, url, "alice", LIMIT)
    response = sign_in(client, url, "alice", PASSWORD)

    assert statuses == [200] * (LIMIT - 1) + [429]  # the tenth failure locks
    assert_lockout_page(response)
    assert signed_in_as(client) is None


def test_failures_on_the_site_and_the_admin_login_add_up(alice):
    client = Client()

    fail(client, SITE, "alice", LIMIT // 2)
    fail(client, ADMIN, "alice", LIMIT - LIMIT // 2 - 1)
    assert sign_in(client, ADMIN, "alice", WRONG).status_code == 429

    assert_lockout_page(sign_in(client, SITE, "alice", PASSWORD))


def test_an_attacker_rotating_addresses_and_browsers_is_locked_all_the_same(alice):
    for n in range(LIMIT):
        Client(REMOTE_ADDR=f"203.0.113.{n + 1}", HTTP_USER_AGENT=f"bot/{n}").post(
            SITE, {"username": "alice", "password": WRONG}
        )

    # From yet another address, the right password is refused too.
    response = sign_in(Client(REMOTE_ADDR="198.51.100.9"), SITE, "alice", PASSWORD)
    assert_lockout_page(response)


def test_nine_wrong_passwords_are_told_so_and_do_not_lock(alice):
    client = Client()

    response = None
    for _ in range(LIMIT - 1):
        response = sign_in(client, SITE, "alice", WRONG)
    assert response.status_code == 200
    assert "That username and password do not match" in response.content.decode()

    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 302
    assert signed_in_as(client) == "alice"


def test_the_right_password_works_again_after_the_cool_off(alice):
    client = Client()
    fail(client, SITE, "alice", LIMIT)

    cool_off_passes(COOLOFF - timedelta(minutes=1))
    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 429  # a minute early
    cool_off_passes(timedelta(minutes=1, seconds=1))
    response = sign_in(client, SITE, "alice", PASSWORD)

    assert response.status_code == 302
    assert signed_in_as(client) == "alice"


def test_failures_during_a_lock_do_not_make_it_longer(alice):
    # Else anyone could keep a username locked for ever with one try a quarter-hour.
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    fail(attacker, SITE, "alice", LIMIT)
    cool_off_passes(COOLOFF - timedelta(minutes=1))

    assert fail(attacker, SITE, "alice", 5) == [429] * 5  # still locked, and refused
    cool_off_passes(timedelta(minutes=1, seconds=1))

    assert sign_in(Client(), SITE, "alice", PASSWORD).status_code == 302


def test_the_counter_starts_again_after_a_success(alice):
    client = Client()
    fail(client, SITE, "alice", LIMIT - 1)
    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 302
    client.post(reverse("logout"))

    assert fail(client, SITE, "alice", LIMIT - 1) == [200] * (LIMIT - 1)
    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 302
    assert signed_in_as(client) == "alice"


def test_an_admin_unlocks_a_username_at_once(alice):
    client = Client()
    fail(client, SITE, "alice", LIMIT)
    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 429

    call_command("axes_reset_username", "alice", stdout=io.StringIO())

    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 302


def test_another_username_is_not_locked(alice, bob):
    attacker = Client()
    fail(attacker, SITE, "alice", LIMIT)

    # Not from the attacker's own address either: the lock is the username's.
    bobs = Client()
    assert sign_in(bobs, SITE, "bob", PASSWORD).status_code == 302
    assert signed_in_as(bobs) == "bob"
    assert sign_in(Client(), ADMIN, "bob", PASSWORD).status_code == 302
    assert sign_in(attacker, SITE, "bob", PASSWORD).status_code == 302


def test_wrong_api_tokens_lock_nobody_and_do_not_block_the_right_token(alice):
    _, token = create_token(alice)
    api = Client()

    wrong = [{"mj-api-secret": f"wrong-{n}"} for n in range(10)]
    wrong += [{"Authorization": f"Bearer wrong-{n}"} for n in range(10)]

    assert [api.get(API, headers=headers).status_code for headers in wrong] == [401] * 20
    assert api.get(API, headers={"mj-api-secret": token}).status_code == 200
    assert api.get(API, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    client = Client()
    assert sign_in(client, SITE, "alice", PASSWORD).status_code == 302
    assert signed_in_as(client) == "alice"


def test_a_locked_users_api_token_still_works(alice):
    # Scripts are not people typing passwords; their token is the credential.
    _, token = create_token(alice)
    fail(Client(), SITE, "alice", LIMIT)
    assert sign_in(Client(), SITE, "alice", PASSWORD).status_code == 429

    response = Client().get(API, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_the_lockout_page_speaks_chinese(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    fail(client, SITE, "alice", LIMIT)

    response = sign_in(client, SITE, "alice", PASSWORD)

    assert response.status_code == 429
    text = response.content.decode()
    assert '<html lang="zh-hans">' in text
    assert "登录失败次数过多" in text
    assert "最长 15 分钟" in text
    assert "python manage.py axes_reset_username alice" in text


def test_without_a_cool_off_the_lock_lasts_until_an_admin_lifts_it(alice, settings):
    settings.AXES_COOLOFF_TIME = None  # MJ_LOGIN_COOLOFF_MINUTES=0
    client = Client()
    fail(client, SITE, "alice", LIMIT)
    cool_off_passes(timedelta(days=30))

    response = sign_in(client, SITE, "alice", PASSWORD)

    assert response.status_code == 429
    text = re.sub(r"\s+", " ", response.content.decode())
    assert "the account “alice” is locked until an administrator unlocks it" in text
    assert "python manage.py axes_reset_username alice" in text


def test_an_attempt_keeps_no_password_nor_csrf_token(alice):
    from axes.models import AccessAttempt

    client = Client(enforce_csrf_checks=True)
    client.get(SITE)
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        SITE, {"username": "alice", "password": WRONG, "csrfmiddlewaretoken": csrf}
    )

    assert response.status_code == 200  # through the CSRF check, a wrong password
    attempt = AccessAttempt.objects.get()
    assert attempt.username == "alice"
    stored = " ".join(str(value) for value in attempt.__dict__.values())
    assert WRONG not in stored
    assert csrf not in stored


def test_behind_the_proxy_the_attempt_records_the_address_nginx_saw(alice, settings):
    # nginx appends the address it saw to whatever X-Forwarded-For the client sent.
    from axes.models import AccessAttempt

    from mjsite.settings import client_ip_behind_proxy

    settings.AXES_CLIENT_IP_CALLABLE = client_ip_behind_proxy
    sign_in(Client(), SITE, "alice", WRONG, HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.23")
    sign_in(Client(), SITE, "alice", WRONG, HTTP_X_FORWARDED_FOR="not-an-address")

    assert sorted(AccessAttempt.objects.values_list("ip_address", flat=True)) == [
        "127.0.0.1",  # no address in the header: the connection's own
        "198.51.100.23",
    ]


def python_settings(code, **env):
    """Print from mjsite's settings in a fresh process with only the given MJ_/DJANGO_ vars."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MJ_"))}
    clean.update(DJANGO_SETTINGS_MODULE="mjsite.settings", LOG_LEVEL="WARNING", **env)
    clean.pop("REDIS_URL", None)
    prelude = "import django; django.setup(); from django.conf import settings as s\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_limit_and_the_cool_off_come_from_the_environment():
    code = (
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.AXES_LOCKOUT_PARAMETERS,"
        " s.AXES_RESET_ON_SUCCESS, s.AXES_HTTP_RESPONSE_CODE,"
        " getattr(s, 'AXES_CLIENT_IP_CALLABLE', None) is not None)"
    )

    default = python_settings(code)
    changed = python_settings(
        code, MJ_LOGIN_FAILURE_LIMIT="5", MJ_LOGIN_COOLOFF_MINUTES="60", DJANGO_BEHIND_PROXY="1"
    )
    forever = python_settings(code, MJ_LOGIN_COOLOFF_MINUTES="0")
    nonsense = python_settings(code, MJ_LOGIN_FAILURE_LIMIT="0")

    assert default.stdout.strip() == "10 0:15:00 ['username'] True 429 False", default.stderr
    assert changed.stdout.strip() == "5 1:00:00 ['username'] True 429 True", changed.stderr
    assert forever.stdout.strip() == "10 None ['username'] True 429 False", forever.stderr
    assert nonsense.returncode != 0
    assert "MJ_LOGIN_FAILURE_LIMIT" in nonsense.stderr


SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_person_in_a_browser_sees_the_lockout_page_without_csp_violations(
    browser, live_server, django_user_model
):
    django_user_model.objects.create_user("carol", password=PASSWORD)
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15_000)
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    try:
        for n in range(LIMIT + 1):
            page.goto(live_server.url + SITE)
            page.fill("#id_username", "carol")
            page.fill("#id_password", PASSWORD if n == LIMIT else WRONG)
            with page.expect_navigation() as navigation:
                page.click("button[type=submit]")
        response = navigation.value

        assert response.status == 429
        text = page.inner_text("main")
        assert "the account “carol” is locked for up to 15 minutes" in text
        assert "python manage.py axes_reset_username carol" in text
        assert page.evaluate("window.__csp") == []
        if os.getenv("MJ_SCREENSHOTS"):  # README's picture of it (see tests/test_browser.py)
            page.screenshot(path=SCREENSHOTS / "locked-out.png", full_page=True)
        page.click(f"a[href='{SITE}']")
        page.wait_for_url(live_server.url + SITE)
    finally:
        context.close()
