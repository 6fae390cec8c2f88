"""The pages for people: login everywhere, filters, search, keyset pages, exports, safety."""

import csv
import html
import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tasks.ingest.sync import ingest
from tasks.models import Account, HourlyCount, ImageState, RolledHour, Source, SyncRun, Task
from tasks.web import pager, views

pytestmark = pytest.mark.django_db

SECRET = "sk-page-secret-9f8e7d"
# A text search first sizes itself (search.sqlite_search, search_postgresql.SIZING_SQL):
# one more query.
SIZING = 1
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, in ms


def record(n, **fields):
    """A novicezk-style record; n makes the id and the submit time."""
    submit = T0 + n * 60_000
    base = {
        "id": f"{submit}{n % 1000:03d}",
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": f"prompt number {n}",
        "promptEn": f"prompt number {n}",
        "description": f"/imagine prompt number {n}",
        "submitTime": submit,
        "startTime": submit + 5_000,
        "finishTime": submit + 65_000,
        "progress": "100%",
        "imageUrl": f"https://cdn.discordapp.com/attachments/1/2/img_{n}.png",
        "failReason": None,
        "properties": {"finalPrompt": f"prompt number {n}"},
    }
    base.update(fields)
    return base


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # PBKDF2 costs a second per user on this machine; these tests log in many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_overview():
    cache.clear()  # the overview's figures are cached for a minute


@pytest.fixture
def source():
    return Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret=SECRET)


@pytest.fixture
def user():
    return User.objects.create_user("reader", password="pw-reader-123")


@pytest.fixture
def client(user):
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def viewer_client():
    viewer = User.objects.create_user("viewer", password="pw-viewer-123")
    viewer.groups.add(Group.objects.get(name="viewer"))
    c = Client()
    c.force_login(viewer)
    return c


@pytest.fixture
def tasks(source):
    """A small realistic mix: Chinese and English prompts, failures, a running task."""
    records = [
        record(1, prompt="猫猫", promptEn="Cat", description="/imagine 猫猫"),
        record(
            2,
            prompt="黄昏时的灯塔",
            promptEn="Lighthouse at dusk",
            description="/imagine 黄昏时的灯塔",
        ),
        record(
            3,
            status="FAILURE",
            prompt="山水画",
            failReason="任务超时",
            progress="",
            imageUrl=None,
            finishTime=T0 + 3 * 60_000 + 300_000,
        ),
        record(4, action="UPSCALE", prompt="", promptEn="", description=None),
        record(5, status="IN_PROGRESS", progress="31%", finishTime=None, prompt="a red fox"),
        record(6, action="DESCRIBE", status="FAILURE", failReason="Invalid Form Body", progress=""),
    ]
    # The upscale of the lighthouse: "/up <id> U1" names its parent.
    records[3]["description"] = f"/up {records[1]['id']} U1"
    ingest(source, records)
    return {r["id"]: r for r in records}


def ids(response):
    return [t.task_id for t in response.context["tasks"]]


# Login


def sample_urls(patterns=None, prefix=""):
    """Every URL pattern of the project, with sample values for its parameters."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from sample_urls(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            for name in getattr(entry.pattern, "converters", {}):
                route = route.replace(f"<str:{name}>", "1700000000000001")
                route = route.replace(f"<path:{name}>", "images/ab/x.png")
                route = route.replace(f"<int:{name}>", "1").replace(f"<{name}>", "x")
            yield "/" + route.lstrip("^").rstrip("$").replace("\\Z", ""), entry


# Endpoints with their own credential or their own login page, and the health check
# that load balancers call without one.
NOT_BEHIND_THE_LOGIN_PAGE = (
    "/accounts/login/",
    "/accounts/logout/",
    "/admin/",
    "/mj/",
    "/hooks/",
    "/healthz",
    "/metrics",
    "/s/",  # a share link: the token is the credential (tests/test_curation.py)
)


def test_every_url_pattern_redirects_to_the_login_page_when_logged_out(source):
    login = reverse("login")
    checked = 0
    for url, _pattern in sample_urls():
        if url.startswith(NOT_BEHIND_THE_LOGIN_PAGE) or "(" in url or "[" in url:
            continue
        response = Client().get(url)
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith(login + "?next="), url
        # A POST is sent to the login page too, or refused for its method: never served.
        response = Client().post(url)
        assert response.status_code in (302, 405), (url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith(login + "?next="), url
        checked += 1
    assert checked >= 10  # the walk really found the pages


def test_the_admin_sends_anonymous_visitors_to_its_login():
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_login_page_opens_and_signs_in(user):
    c = Client()
    page = c.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content

    response = c.post(reverse("login"), {"username": "reader", "password": "pw-reader-123"})

    assert response.status_code == 302
    assert response["Location"] == settings.LOGIN_REDIRECT_URL
    assert c.get("/").status_code == 200


def test_logging_out_is_a_post_form_on_every_page(client):
    page = client.get(reverse("tasks:list")).content.decode()
    assert f'action="{reverse("logout")}" method="post"' in page

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert client.get(reverse("tasks:list")).status_code == 302


def test_the_viewer_group_exists_and_can_see_but_not_change(viewer_client, tasks):
    group = Group.objects.get(name="viewer")
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert "view_task" in codenames
    assert not any(c.startswith(("change_", "add_", "delete_")) for c in codenames)
    assert viewer_client.get(reverse("tasks:list")).status_code == 200


# Query counts: pinned, so an N+1 fails loudly. Each request costs 2 for the session
# and the user.


def ms(moment):
    return int(moment.timestamp() * 1000)


def overview_rows(first, sources, per_source):
    """Sources `first`.. with a sync run each and `per_source` tasks each, in the overview's
    window: in the current hour (counted live) and in past hours (rolled up), the more
    sources the more hours, failures with their reasons among them."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for i in range(first, first + sources):
        src = Source.objects.create(name=f"source-{i}", base_url="http://127.0.0.1:9")
        SyncRun.objects.create(source=src, kind="full", outcome="ok", ended=timezone.now())
        rows = []
        for n in range(per_source):
            submitted = hour - timedelta(hours=3 * i + n, seconds=n)  # the first: this hour
            fields = {"submitTime": ms(submitted), "startTime": ms(submitted) + 4_000}
            fields["finishTime"] = ms(submitted) + 50_000
            if n % 4 == 3:
                fields.update(status="FAILURE", failReason=f"reason {n}", imageUrl=None)
            rows.append(record(1000 * i + n, **fields))
        ingest(src, rows)


def overview_queries(client):
    """The queries of the overview's first request (rolls up the window from nothing) and
    of a later one once its cached figures have expired, with the figures shown."""
    cache.clear()
    HourlyCount.objects.all().delete()
    RolledHour.objects.all().delete()
    with CaptureQueriesContext(connection) as cold:
        response = client.get("/")
    assert response.status_code == 200
    cache.clear()
    with CaptureQueriesContext(connection) as warm:
        client.get("/")
    return len(cold), len(warm), response.context


def test_the_overview_costs_the_same_queries_however_many_rows_it_shows(
    client, django_assert_num_queries
):
    # No query per source, per task shown or per hour: three times the sources, the
    # tasks and the hours holding them cost not one query more, on the first request
    # (which rolls up the window) and on a later one.
    overview_rows(0, sources=2, per_source=4)
    cold, warm, shown = overview_queries(client)
    assert (shown["stats"]["total"], len(shown["stats"]["sources"])) == (8, 2)
    assert len(shown["recent"]) == 8
    # Rolling up the window's 720 hours from nothing: a few statements, not one an hour
    # (nor one a day).
    assert cold - warm < 24, (cold, warm)

    overview_rows(2, sources=4, per_source=4)
    assert overview_queries(client)[:2] == (cold, warm)
    shown = overview_queries(client)[2]
    assert (shown["stats"]["total"], len(shown["stats"]["sources"])) == (24, 6)
    assert len(shown["recent"]) == views.RECENT == 12
    assert dict(shown["stats"]["reasons"]) == {"reason 3": 6}

    # Within the minute the figures come from the cache: session, user, secrets, recent.
    with django_assert_num_queries(4):
        client.get("/")


@pytest.mark.parametrize(
    "query, count",
    [
        ("", 6),
        ("?status=SUCCESS&action=IMAGINE", 6),
        ("?q=猫猫", 6 + SIZING),
        ("?range=24h&sort=-duration", 6),
        ("?source=main", 6),
    ],
)
def test_the_list_costs_a_fixed_number_of_queries(
    client, tasks, query, count, django_assert_num_queries
):
    # session, user, page, the NULL-key tail (short list), facets, sources
    with django_assert_num_queries(count):
        response = client.get(reverse("tasks:list") + query)
    assert response.status_code == 200


def test_a_deep_page_costs_what_the_first_page_costs(
    client, source, django_assert_num_queries, settings
):
    ingest(source, [record(n) for n in range(130)])
    first = client.get(reverse("tasks:list"))
    cursor = first.context["next_cursor"]
    second = client.get(reverse("tasks:list") + f"?cursor={cursor}")
    cursor = second.context["next_cursor"]
    # session, user, page, facets, sources: no tail query while the page is full
    with django_assert_num_queries(5):
        client.get(reverse("tasks:list") + f"?cursor={cursor}")
    with django_assert_num_queries(5):
        client.get(reverse("tasks:list"))


def test_the_gallery_costs_a_fixed_number_of_queries(client, tasks, django_assert_num_queries):
    with django_assert_num_queries(6):
        response = client.get(reverse("tasks:gallery"))
    assert response.status_code == 200


def test_the_detail_page_costs_a_fixed_number_of_queries(client, tasks, django_assert_num_queries):
    url = Task.objects.get(action="UPSCALE").get_absolute_url()
    # session, user, task, secrets, events, parent, children, permissions (user, groups)
    with django_assert_num_queries(9 + SIZING):
        response = client.get(url)
    assert response.status_code == 200


def test_the_live_parts_cost_a_fixed_number_of_queries(client, tasks, django_assert_num_queries):
    running = Task.objects.get(status="IN_PROGRESS")
    # session, user, the secrets to mask, the rows (and the detail's events)
    with django_assert_num_queries(4):
        client.get(reverse("tasks:list_live") + f"?pk={running.pk}&pk=999")
    with django_assert_num_queries(5):
        client.get(reverse("tasks:detail_live", args=[running.task_id]))


def test_the_exports_cost_a_fixed_number_of_queries(client, tasks, django_assert_num_queries):
    for name in ("tasks:export_csv", "tasks:export_jsonl"):
        # session, user, the filters tried (one row), the secrets to mask, the rows (one
        # chunk here)
        with django_assert_num_queries(5):
            b"".join(client.get(reverse(name)).streaming_content)


# Filters


def test_the_list_shows_newest_first_with_a_link_and_thumbnail_per_task(client, tasks):
    response = client.get(reverse("tasks:list"))
    page = response.content.decode()

    assert ids(response) == sorted(tasks, reverse=True)
    for task_id in tasks:
        assert f'href="/tasks/{task_id}/?source=main"' in page
    assert 'src="https://cdn.discordapp.com/attachments/1/2/img_1.png"' in page
    assert 'loading="lazy"' in page


def test_it_filters_by_status_and_by_repeated_actions(client, tasks):
    failed = client.get(reverse("tasks:list") + "?status=FAILURE")
    assert {t.status for t in failed.context["tasks"]} == {"FAILURE"}
    assert len(ids(failed)) == 2

    both = client.get(reverse("tasks:list") + "?action=UPSCALE&action=DESCRIBE")
    assert {t.action for t in both.context["tasks"]} == {"UPSCALE", "DESCRIBE"}

    combined = client.get(reverse("tasks:list") + "?status=FAILURE&action=DESCRIBE")
    assert len(ids(combined)) == 1


def test_status_and_action_chips_count_with_the_other_filters_applied(client, tasks):
    response = client.get(reverse("tasks:list") + "?action=IMAGINE")
    statuses = {c["value"]: c["n"] for c in response.context["statuses"]}
    actions = {c["value"]: c["n"] for c in response.context["actions"]}

    assert statuses == {"SUCCESS": 2, "FAILURE": 1, "IN_PROGRESS": 1}
    assert actions == {"IMAGINE": 4, "UPSCALE": 1, "DESCRIBE": 1}  # all actions stay visible
    chip = next(c for c in response.context["actions"] if c["value"] == "IMAGINE")
    assert chip["selected"] and "action=IMAGINE" not in chip["url"]


def test_chips_count_the_newest_matches_and_say_so_when_capped(client, tasks, monkeypatch):
    monkeypatch.setattr(views, "FACET_SAMPLE", 3)
    capped = client.get(reverse("tasks:list"))
    assert sum(c["n"] for c in capped.context["statuses"]) == 3
    assert capped.context["facets_capped"] and capped.context["facet_sample"] == 3
    assert b"Counts are over the newest 3 matching tasks" in capped.content
    searched = client.get(reverse("tasks:list") + "?q=" + next(iter(tasks)))
    assert sum(c["n"] for c in searched.context["statuses"]) == 1  # the id matches one
    assert not searched.context["facets_capped"]
    monkeypatch.setattr(views, "FACET_SAMPLE", 100)
    whole = client.get(reverse("tasks:list"))
    assert sum(c["n"] for c in whole.context["statuses"]) == len(tasks)
    assert not whole.context["facets_capped"]


def test_gallery_chips_count_only_the_tasks_that_have_an_image(client, source):
    ingest(
        source,
        [
            record(1),
            record(2, action="UPSCALE"),
            record(3, status="FAILURE", failReason="banned prompt", imageUrl=None),
            record(4, status="FAILURE", failReason="timeout", imageUrl=None),
            record(5, status="FAILURE", failReason="timeout", imageUrl="", action="UPSCALE"),
            record(6, status="FAILURE", failReason="late", imageUrl="", action="VARIATION"),
            record(7, status="SUBMITTED", progress="", imageUrl=None, finishTime=None),
        ],
    )
    # An image the archive kept after the record lost its link still makes a card.
    Task.objects.filter(task_id=record(6)["id"]).update(
        image_state=ImageState.ARCHIVED, thumb_file="thumbs/ab/six.webp"
    )
    response = client.get(reverse("tasks:gallery"))
    statuses = {c["value"]: c["n"] for c in response.context["statuses"]}
    actions = {c["value"]: c["n"] for c in response.context["actions"]}

    assert statuses == {"SUCCESS": 2, "FAILURE": 1}
    assert actions == {"IMAGINE": 1, "UPSCALE": 1, "VARIATION": 1}
    assert len(ids(response)) == 3
    # Every chip leads to as many cards as it says.
    for chip in response.context["statuses"] + response.context["actions"]:
        followed = client.get(reverse("tasks:gallery") + chip["url"])
        assert len(ids(followed)) == chip["n"], chip
    # The list still counts every task.
    listed = client.get(reverse("tasks:list"))
    assert {c["value"]: c["n"] for c in listed.context["statuses"]} == {
        "SUCCESS": 2,
        "FAILURE": 4,
        "SUBMITTED": 1,
    }


def test_it_filters_by_submit_time_with_dates_and_datetimes(client, tasks):
    # Task n was submitted at T0 + n minutes: 22:14:20 for n=1 ... 22:19:20 for n=6.
    after = client.get(reverse("tasks:list") + "?submitted_after=2023-11-14T22:16:00Z")
    assert len(ids(after)) == 4
    before = client.get(reverse("tasks:list") + "?submitted_before=2023-11-14T22:16:00%2B00:00")
    assert len(ids(before)) == 2
    day = client.get(
        reverse("tasks:list") + "?submitted_after=2023-11-14&submitted_before=2023-11-15"
    )
    assert len(ids(day)) == 6
    nothing = client.get(reverse("tasks:list") + "?submitted_after=2023-11-15")
    assert ids(nothing) == []


def test_typed_dates_win_over_a_preset_left_in_the_url(client, tasks):
    # The fixtures are from 2023: "last 24 hours" alone finds none of them.
    assert ids(client.get(reverse("tasks:list"), {"range": "24h"})) == []
    query = {
        "range": "24h",
        "submitted_after": "2023-11-14T22:16:00",
        "submitted_before": "2023-11-14T22:18:00",
    }

    response = client.get(reverse("tasks:list"), query)

    assert ids(response) == [record(4)["id"], record(3)["id"]]  # 22:17:20 and 22:16:20
    assert response.context["values"]["range"] == ""
    page = response.content.decode()
    assert 'value="24h" checked' not in page  # the preset is not shown as chosen
    assert '<details class="custom-range" open>' in page
    assert response.context["form"].is_filtered()
    gallery = client.get(reverse("tasks:gallery"), query)
    assert ids(gallery) == [record(4)["id"]]  # 3 failed without an image
    export = client.get(reverse("tasks:export_csv"), query)
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert [r["task_id"] for r in rows] == [record(4)["id"], record(3)["id"]]
    # Only one bound is typed: it still wins, the other side stays open.
    before_only = client.get(
        reverse("tasks:list"), {"range": "1h", "submitted_before": "2023-11-14T22:16:00"}
    )
    assert ids(before_only) == [record(2)["id"], record(1)["id"]]


def test_a_broken_date_is_ignored_and_reported_not_a_server_error(client, tasks):
    response = client.get(reverse("tasks:list") + "?submitted_after=yesterday&status=SUCCESS")
    assert response.status_code == 200
    assert len(ids(response)) == 3
    assert "submitted_after" in response.content.decode()


def test_time_range_presets_count_back_from_now(client, source):
    now = int(timezone.now().timestamp() * 1000)
    ingest(
        source,
        [
            record(1, id="1", submitTime=now - 10 * 60_000),
            record(2, id="2", submitTime=now - 3 * 3600_000),
            record(3, id="3", submitTime=now - 3 * 86400_000),
            record(4, id="4", submitTime=now - 20 * 86400_000),
        ],
    )
    counts = {
        preset: len(ids(client.get(reverse("tasks:list") + f"?range={preset}")))
        for preset in ("1h", "24h", "7d", "30d")
    }
    assert counts == {"1h": 1, "24h": 2, "7d": 3, "30d": 4}


def test_it_filters_by_source(client, tasks):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:8")
    ingest(other, [record(50, prompt="elsewhere")])
    response = client.get(reverse("tasks:list") + "?source=other")
    assert [t.source.name for t in response.context["tasks"]] == ["other"]
    assert 'name="source"' in response.content.decode()  # the choice appears with two sources


# Search (the search index itself is tested in test_search.py)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("猫猫", [1]),
        ("灯塔", [2]),  # two characters inside 黄昏时的灯塔
        ("灯", [2]),
        ("黄昏 灯塔", [2]),
        ("任务超时", [3]),  # the fail reason
        ("lighthouse", [2]),  # promptEn
        ("LIGHT", [2]),  # a prefix, any case
        ("form body", [6]),
        ("塔灯", []),
    ],
)
def test_the_text_search_finds_short_chinese_words_and_english(client, tasks, query, expected):
    wanted = [record(n)["id"] for n in expected]
    response = client.get(reverse("tasks:list"), {"q": query})
    assert sorted(ids(response)) == sorted(wanted)


def test_searching_a_task_id_finds_the_task_and_the_tasks_made_from_it(client, tasks):
    lighthouse = record(2)["id"]
    response = client.get(reverse("tasks:list"), {"q": f" {lighthouse} "})
    assert sorted(ids(response)) == sorted([lighthouse, record(4)["id"]])


# Sorting and keyset pages


def test_it_sorts_by_submit_finish_and_duration_with_unknown_values_last(client, source):
    # One at a time, so that ids (which break ties) go a, b, c, d: a batch creates its
    # tasks in submit order, d (no submit time) first.
    for one in [
        record(1, id="a", finishTime=T0 + 900_000),  # ran 14m55s
        record(2, id="b", finishTime=T0 + 2 * 60_000 + 30_000),  # ran 25 s
        record(3, id="c", status="IN_PROGRESS", finishTime=None, progress="15%"),
        record(4, id="d", submitTime=None, startTime=None, finishTime=None, status="NOT_START"),
    ]:
        ingest(source, [one])

    def order(sort):
        return ids(client.get(reverse("tasks:list"), {"sort": sort}))

    assert order("-submitted") == ["c", "b", "a", "d"]
    assert order("submitted") == ["a", "b", "c", "d"]
    assert order("-finished") == ["a", "b", "d", "c"]
    assert order("finished") == ["b", "a", "c", "d"]
    assert order("-duration") == ["a", "b", "d", "c"]
    assert order("duration") == ["b", "a", "c", "d"]


@pytest.mark.parametrize("sort", ["-submitted", "submitted", "-finished", "duration"])
def test_walking_every_page_lists_each_task_once_in_order(client, source, sort):
    records = [record(n, finishTime=T0 + n * 60_000 + 5_000 + (n % 7) * 1000) for n in range(120)]
    records += [
        record(200 + n, submitTime=None, finishTime=None, status="NOT_START") for n in range(7)
    ]
    records += [record(300 + n, status="SUBMITTED", finishTime=None) for n in range(5)]
    ingest(source, records)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"sort": sort} | ({"cursor": cursor} if cursor else {})
        response = client.get(reverse("tasks:list"), params)
        seen += ids(response)
        pages += 1
        cursor = response.context["next_cursor"]
        if not cursor:
            break
        assert (
            f"cursor={cursor.replace('+', '%2B').replace(':', '%3A')}" in response.content.decode()
        )
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(records)
    key, desc = views.SORTS[sort]
    qs = Task.objects.all()
    if key == "duration":
        from tasks.web.pager import duration_expression

        qs = qs.annotate(duration=duration_expression())
    expected = [
        t.task_id
        for t in qs.filter(**{f"{key}__isnull": False}).order_by(
            pager.order_by(key, desc), pager.order_by("id", desc)
        )
    ]
    expected += [
        t.task_id
        for t in qs.filter(**{f"{key}__isnull": True}).order_by(pager.order_by("id", desc))
    ]
    assert seen == expected


@pytest.mark.parametrize("sort", ["-submitted", "submitted", "-finished", "duration"])
def test_previous_page_links_walk_back_through_the_same_pages(client, source, sort):
    records = [record(n, finishTime=T0 + n * 60_000 + 5_000 + (n % 7) * 1000) for n in range(120)]
    records += [
        record(200 + n, submitTime=None, finishTime=None, status="NOT_START") for n in range(57)
    ]
    ingest(source, records)

    def page(cursor):
        params = {"sort": sort} | ({"cursor": cursor} if cursor else {})
        return client.get(reverse("tasks:list"), params)

    forward, cursor = [], None
    while True:
        response = page(cursor)
        forward.append(ids(response))
        cursor = response.context["next_cursor"]
        if not cursor:
            break
    assert len(forward) == 4  # 177 tasks, 50 a page: the last two in the NULL-key tail

    backward = [forward[-1]]
    while not response.context["is_first_page"]:
        href = response.content.decode().split('rel="prev" href="')[1].split('"')[0]
        response = client.get(reverse("tasks:list") + html.unescape(href))
        backward.append(ids(response))
    assert backward[::-1] == forward
    assert 'rel="prev"' not in page(None).content.decode()


def test_page_links_keep_the_filters(client, source):
    ingest(source, [record(n, status="FAILURE", failReason="灯塔 failed") for n in range(60)])
    response = client.get(reverse("tasks:list"), {"status": "FAILURE", "q": "灯塔", "range": ""})
    page = response.content.decode()
    next_link = page.split('rel="next" href="')[1].split('"')[0]
    assert "status=FAILURE" in next_link and "q=%E7%81%AF%E5%A1%94" in next_link
    assert "cursor=" in next_link


def test_a_forged_cursor_starts_from_the_first_page(client, source):
    ingest(source, [record(n) for n in range(60)])  # more than a page
    first = client.get(reverse("tasks:list"))
    assert len(ids(first)) == 50 and first.context["next_cursor"]
    for cursor in ("garbage", "k~not-a-date~1", "k~1~x", "~~", "k~2023-11-14~"):
        response = client.get(reverse("tasks:list"), {"cursor": cursor})
        assert response.status_code == 200, cursor
        assert ids(response) == ids(first), cursor
        assert response.context["next_cursor"] == first.context["next_cursor"], cursor
        assert response.context["is_first_page"], cursor
        assert "cursor: Not a page of this list: the first page is shown." in html.unescape(
            response.content.decode()
        ), cursor


def test_a_cursor_after_the_last_task_shows_an_empty_page_not_an_error(client, source):
    # Well formed, so not refused: the rows without a submit time, after an id below
    # every task's. Nothing comes after it.
    ingest(source, [record(n) for n in range(60)])
    response = client.get(reverse("tasks:list"), {"cursor": "n~~-5"})
    assert response.status_code == 200
    assert ids(response) == []
    assert response.context["next_cursor"] is None
    assert not response.context["is_first_page"]


# Rows


def test_a_running_task_shows_its_progress_and_the_page_polls_for_it(client, tasks):
    running = Task.objects.get(status="IN_PROGRESS")
    page = client.get(reverse("tasks:list")).content.decode()

    assert '<progress max="100" value="31"' in page
    assert f"{reverse('tasks:list_live')}?view=list&amp;pk={running.pk}" in page
    assert 'hx-trigger="every 2s"' in page


def test_the_live_rows_stop_polling_once_every_task_finished(client, source, tasks):
    running = Task.objects.get(status="IN_PROGRESS")
    url = reverse("tasks:list_live") + f"?pk={running.pk}"
    assert 'hx-trigger="every 2s"' in client.get(url).content.decode()

    ingest(source, [record(5, prompt="a red fox")])  # now finished
    page = client.get(url).content.decode()

    assert f'id="task-{running.pk}"' in page and 'hx-swap-oob="true"' in page
    assert "hx-trigger" not in page


def row_html(page, task):
    start = page.index(f'<tr id="task-{task.pk}"')
    return page[start : page.index("</tr>", start)]


def test_each_row_shows_when_how_long_and_why_it_failed(client, tasks, source, settings):
    # Times are shown in the site's TIME_ZONE; the zone's name is in the tooltip.
    settings.TIME_ZONE = "Asia/Shanghai"
    page = client.get(reverse("tasks:list")).content.decode()

    # Task 3 failed: submitted 22:16:20 UTC (T0 + 3 min), started 5 s later, failed
    # 300 s after submission, so it ran 4 min 55 s.
    failed = row_html(page, Task.objects.get(task_id=record(3)["id"]))
    assert '<time datetime="2023-11-15T06:16:20+08:00" title="2023-11-15 06:16:20 CST">' in failed
    assert '<small class="muted">2023-11-15 06:16:20</small>' in failed
    assert '<span class="fail-reason">任务超时</span>' in failed
    assert '<td class="c-duration">4 min 55 s</td>' in failed
    # Task 1 succeeded after 1 min of work; no fail reason.
    done = row_html(page, Task.objects.get(task_id=record(1)["id"]))
    assert "2023-11-15 06:14:20" in done
    assert '<td class="c-duration">1 min 0 s</td>' in done
    assert "fail-reason" not in done
    # Task 5 is still running: the time it waited in the queue, marked as such.
    running = row_html(page, Task.objects.get(task_id=record(5)["id"]))
    assert 'title="waited in the queue">5 s</span>' in running

    # How long ago, from a task submitted 2 days, 3 hours and 10 minutes ago.
    submitted = timezone.now() - timedelta(days=2, hours=3, minutes=10)
    ms = int(submitted.timestamp() * 1000)
    ingest(
        source,
        [record(9, id="recent", submitTime=ms, startTime=ms + 2_000, finishTime=ms + 44_500)],
    )
    page = client.get(reverse("tasks:list")).content.decode()
    recent = row_html(page, Task.objects.get(task_id="recent"))
    assert ">2\xa0days, 3\xa0hours ago</time>" in recent
    local = timezone.localtime(Task.objects.get(task_id="recent").submitted)
    assert f'<small class="muted">{local:%Y-%m-%d %H:%M:%S}</small>' in recent
    assert local.utcoffset() == timedelta(hours=8)
    assert '<td class="c-duration">42.5 s</td>' in recent


def test_a_lost_image_says_so_instead_of_a_broken_picture(client, source):
    ingest(source, [record(1)])
    Task.objects.update(image_state=ImageState.LOST)
    page = client.get(reverse("tasks:list")).content.decode()
    assert "image lost" in page
    assert "img_1.png" not in page


def test_an_archived_thumbnail_is_preferred_to_the_proxy_link(client, source):
    ingest(source, [record(1)])
    Task.objects.update(
        image_state=ImageState.ARCHIVED,
        thumb_file="thumbs/ab/abc.webp",
        image_file="images/ab/abc.png",
    )
    page = client.get(reverse("tasks:list")).content.decode()
    assert "/media/thumbs/ab/abc.webp" in page
    assert 'src="https://cdn.discordapp.com' not in page


def test_only_http_image_links_are_ever_rendered(client, source):
    ingest(
        source,
        [
            record(1, imageUrl="javascript:alert(1)"),
            record(2, imageUrl="data:image/png;base64,AAAA"),
            record(3, imageUrl="//evil.example/x.png"),
        ],
    )
    for url in (reverse("tasks:list"), reverse("tasks:gallery"), "/"):
        page = client.get(url).content.decode()
        assert "javascript:" not in page and "data:image" not in page and "evil.example" not in page


# Safety


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_proxy_text_is_always_escaped(client, source):
    ingest(
        source,
        [
            record(
                1,
                prompt=XSS,
                promptEn=XSS,
                description=XSS,
                failReason=XSS,
                action="<b>A</b>",
                status="<i>S</i>",
                progress="<u>1%</u>",
                properties={"finalPrompt": XSS, XSS: XSS},
                buttons=[{"customId": XSS, "label": XSS, "emoji": XSS}],
                **{XSS: XSS},
            )
        ],
    )
    task = Task.objects.get()
    for url in ("/", reverse("tasks:list"), reverse("tasks:gallery"), task.get_absolute_url()):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page, url
        assert "<img src=x" not in page, url
        assert "<b>A</b>" not in page and "<i>S</i>" not in page, url
        assert "&lt;script&gt;alert" in page, url


def test_secrets_never_reach_a_page(client, source):
    hook = f"http://mjsite.example/hooks/mj/{source.hook_token}/"
    ingest(source, [record(1, properties={"notifyHook": hook}, notifyHook=hook)])
    task = Task.objects.get()
    urls = ["/", reverse("tasks:list"), reverse("tasks:gallery"), task.get_absolute_url()]
    urls += [reverse("tasks:export_csv"), reverse("tasks:export_jsonl")]
    for url in urls:
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode()
        assert SECRET not in text, url
        assert source.hook_token not in text, url


# Detail


def test_the_detail_page_shows_every_field_the_raw_record_and_the_timeline(client, source):
    ingest(source, [record(1, status="IN_PROGRESS", progress="15%", finishTime=None)])
    ingest(source, [record(1, seed="12345", mode="FAST")])
    task = Task.objects.get()
    response = client.get(task.get_absolute_url())
    page = response.content.decode()

    assert response.status_code == 200
    for text in ("prompt number 1", "/imagine prompt number 1", "img_1.png", "12345", "FAST"):
        assert text in page
    assert "&quot;submitTime&quot;: 1700000060000" in page  # the raw record, formatted
    assert [e.progress for e in response.context["events"]] == ["15%", "100%"]
    assert "5 s" in page and "1 min 0 s" in page  # queue wait and run time


def test_describe_results_are_rendered_readably(client, source):
    final = "1️⃣ a cat on a sofa --ar 4:3\n\n2️⃣ a cat <in> a box --ar 1:1"
    ingest(
        source,
        [record(1, action="DESCRIBE", prompt="", promptEn="", properties={"finalPrompt": final})],
    )
    page = client.get(Task.objects.get().get_absolute_url()).content.decode()
    assert "<p>1️⃣ a cat on a sofa --ar 4:3</p>" in page
    assert "a cat &lt;in&gt; a box" in page


def prompt_panel(page):
    start = page.index("<h2>Prompt</h2>")
    return page[start : page.index("</section>", start)]


def final_prompt_block(page):
    start = page.index('<div class="prose final-prompt">')
    return page[start : page.index("</div>", start)]


def test_describe_and_shorten_results_from_the_simulator_read_well(
    client, start_sim, make_source, clock
):
    from tasks.ingest.sync import sync_source

    sim = start_sim("novicezk")
    src = make_source(sim)
    described = sim.submit(action="DESCRIBE", prompt="")
    shortened = sim.submit(action="SHORTEN", prompt="黄昏时的灯塔 --ar 16:9")
    clock.advance(600)
    sync_source(src, full=True)

    # DESCRIBE: the proxy puts the four prompts in prompt, promptEn and finalPrompt.
    describe = sim.record(described)
    assert describe["status"] == "SUCCESS"
    assert describe["prompt"] == describe["promptEn"] == describe["properties"]["finalPrompt"]
    page = client.get(Task.objects.get(task_id=described).get_absolute_url()).content.decode()
    panel = prompt_panel(page)
    lines = describe["prompt"].split("\n\n")
    assert len(lines) == 4
    for line in lines:
        assert panel.count(html.escape(line)) == 1, line  # once, not three times
        assert f"<p>{html.escape(line)}</p>" in final_prompt_block(page)
    assert "Described prompts" in panel

    # SHORTEN: Discord's **bold** becomes <strong>, its line breaks stay.
    shorten = sim.record(shortened)["properties"]["finalPrompt"]
    assert shorten.startswith("**IMPORTANT TOKENS**\n")
    page = client.get(Task.objects.get(task_id=shortened).get_absolute_url()).content.decode()
    block = final_prompt_block(page)
    assert "**" not in block
    assert block.count("<strong>") == shorten.count("**") // 2
    assert "<p><strong>IMPORTANT TOKENS</strong><br>" in block
    assert "<p><strong>SHORTENED OPTIONS</strong><br>" in block
    assert "Shorten analysis" in page
    assert "黄昏时的灯塔 --ar 16:9" in prompt_panel(page)  # the prompt it shortened, once


def test_bold_in_a_bot_result_is_marked_up_only_after_escaping(client, source):
    final = "**<script>alert(1)</script>**\n**a** & <b>b</b> ** c\n\n**\n**"
    ingest(source, [record(1, action="SHORTEN", properties={"finalPrompt": final})])
    page = client.get(Task.objects.get().get_absolute_url()).content.decode()
    block = final_prompt_block(page)

    assert block.endswith(
        "<p><strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong><br>"
        "<strong>a</strong> &amp; &lt;b&gt;b&lt;/b&gt; ** c</p>\n\n<p>**<br>**</p>"
    )
    assert "<script>" not in page and "<b>b</b>" not in page


def test_prompt_and_prompt_en_with_the_same_text_are_shown_once(client, source):
    ingest(
        source,
        [
            record(1, prompt="a lighthouse at dusk", promptEn="a lighthouse at dusk"),
            record(2, prompt="黄昏时的灯塔", promptEn="a lighthouse at dusk"),
        ],
    )
    same = client.get(Task.objects.get(task_id=record(1)["id"]).get_absolute_url())
    assert same.context["prompt_rows"] == [("Prompt", "a lighthouse at dusk")]
    assert prompt_panel(same.content.decode()).count("a lighthouse at dusk") == 1
    both = client.get(Task.objects.get(task_id=record(2)["id"]).get_absolute_url())
    assert both.context["prompt_rows"] == [
        ("Prompt", "黄昏时的灯塔"),
        ("promptEn", "a lighthouse at dusk"),
    ]


def test_the_detail_page_links_parent_and_children(client, tasks):
    upscale = Task.objects.get(action="UPSCALE")
    parent = Task.objects.get(task_id=record(2)["id"])

    child_page = client.get(upscale.get_absolute_url())
    parent_page = client.get(parent.get_absolute_url())

    assert child_page.context["parent"] == parent
    assert parent_page.context["children"] == [upscale]
    assert upscale.get_absolute_url() in parent_page.content.decode()


def test_a_parent_is_found_through_the_referenced_message_id(client, source):
    ingest(
        source,
        [
            record(1, properties={"messageId": "1100000000000000001"}),
            record(
                2,
                action="UPSCALE",
                description="",
                properties={"referencedMessageId": "1100000000000000001"},
            ),
        ],
    )
    child = Task.objects.get(action="UPSCALE")
    assert client.get(child.get_absolute_url()).context["parent"].task_id == record(1)["id"]


def test_the_source_parameter_picks_among_sources_sharing_an_id(client, source):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:8")
    ingest(source, [record(1, prompt="from main")])
    ingest(other, [record(1, prompt="from other")])
    url = reverse("tasks:detail", args=[record(1)["id"]])

    assert "from main" in client.get(url).content.decode()
    assert "from other" in client.get(url + "?source=other").content.decode()
    assert client.get(url + "?source=nope").status_code == 404
    assert client.get(reverse("tasks:detail", args=["0000"])).status_code == 404


def test_a_viewer_cannot_refresh_a_task_and_sees_no_button(viewer_client, tasks):
    task = Task.objects.first()
    page = viewer_client.get(task.get_absolute_url()).content.decode()
    assert "Refresh from proxy" not in page

    response = viewer_client.post(reverse("tasks:refresh", args=[task.task_id]))

    assert response.status_code == 403


def test_refreshing_is_post_only(admin_client, tasks):
    task = Task.objects.first()
    assert admin_client.get(reverse("tasks:refresh", args=[task.task_id])).status_code == 405


def test_staff_refresh_a_task_from_the_proxy(admin_client, start_sim, make_source, clock):
    sim = start_sim("novicezk")
    source = make_source(sim)
    task_id = sim.submit(prompt="灯塔")
    from tasks.ingest.sync import sync_source

    sync_source(source)
    task = Task.objects.get(task_id=task_id)
    assert task.status != "SUCCESS"
    page = admin_client.get(task.get_absolute_url()).content.decode()
    assert "Refresh from proxy" in page
    clock.advance(600)

    response = admin_client.post(
        reverse("tasks:refresh", args=[task_id]), {"source": source.name}, follow=True
    )

    task.refresh_from_db()
    assert task.status == "SUCCESS"
    assert "Refreshed from the proxy" in response.content.decode()


def test_refreshing_a_task_the_proxy_forgot_says_the_mirror_keeps_it(
    admin_client, start_sim, make_source, clock
):
    from tasks.ingest.sync import sync_source

    sim = start_sim("novicezk")
    source = make_source(sim)
    task_id = sim.submit(prompt="灯塔")
    clock.advance(600)
    sync_source(source, full=True)
    sim.forget(task_id)  # its TTL ran out upstream

    response = admin_client.post(
        reverse("tasks:refresh", args=[task_id]), {"source": source.name}, follow=True
    )

    page = response.content.decode()
    assert "The proxy no longer has this task; the mirror keeps it." in page
    assert 'class="message warning"' in page
    assert "nothing new" not in page
    assert Task.objects.get(task_id=task_id).status == "SUCCESS"  # kept as it was


def test_the_refresh_message_names_a_forgotten_task(admin_client, tasks, monkeypatch):
    # The view's own part, whatever way the sync learns that the proxy forgot the task.
    task = Task.objects.get(task_id=record(1)["id"])
    calls = []

    def refresh_tasks(source, task_ids):
        calls.append((source, task_ids))
        return SyncRun.objects.create(source=source, kind="light", outcome="ok", gone=1)

    monkeypatch.setattr(views.sync, "refresh_tasks", refresh_tasks)
    response = admin_client.post(
        reverse("tasks:refresh", args=[task.task_id]), {"source": "main"}, follow=True
    )

    assert calls == [(task.source, [task.task_id])]
    assert "The proxy no longer has this task; the mirror keeps it." in response.content.decode()


# Exports


def test_the_csv_export_streams_the_filtered_list_with_formulas_neutralised(client, source):
    ingest(
        source,
        [
            record(1, prompt='=HYPERLINK("http://evil")', failReason="+cmd"),
            record(2, prompt="@SUM(A1)", status="FAILURE", failReason="-1"),
            record(3, prompt="猫猫"),
        ],
    )
    response = client.get(reverse("tasks:export_csv") + "?q=SUM&status=FAILURE")

    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(
        csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")))
    )
    assert [r["task_id"] for r in rows] == [record(2)["id"]]
    assert rows[0]["prompt"] == "'@SUM(A1)"
    assert rows[0]["fail_reason"] == "'-1"

    everything = client.get(reverse("tasks:export_csv"))
    rows = list(
        csv.DictReader(io.StringIO(b"".join(everything.streaming_content).decode("utf-8-sig")))
    )
    assert len(rows) == 3
    assert rows[2]["prompt"].startswith("'=HYPERLINK")
    assert rows[0]["prompt"] == "猫猫"


def test_the_json_lines_export_holds_each_record_as_received(client, tasks):
    response = client.get(reverse("tasks:export_jsonl") + "?action=IMAGINE")
    lines = b"".join(response.streaming_content).decode().splitlines()
    items = [json.loads(line) for line in lines]

    assert {i["source"] for i in items} == {"main"}
    assert len(items) == 4
    by_id = {i["task"]["id"]: i["task"] for i in items}
    assert by_id[record(1)["id"]] == tasks[record(1)["id"]]
    assert list(by_id[record(1)["id"]]) == list(tasks[record(1)["id"]])  # key order kept


def test_export_links_carry_the_current_filters(client, tasks):
    page = client.get(reverse("tasks:list"), {"status": "FAILURE", "q": "猫"}).content.decode()
    assert reverse("tasks:export_csv") + "?status=FAILURE&amp;q=%E7%8C%AB" in page


# Overview


def test_the_overview_shows_counts_failure_rate_and_percentiles(client, tasks):
    # Move the fixtures into the overview's window, keeping their durations.
    shift = timezone.now() - timedelta(hours=1) - Task.objects.order_by("submitted")[0].submitted
    for task in Task.objects.all():
        Task.objects.filter(pk=task.pk).update(
            submitted=task.submitted + shift,
            started=task.started and task.started + shift,
            finished=task.finished and task.finished + shift,
        )
    response = client.get("/")
    s = response.context["stats"]

    assert s["total"] == 6
    assert dict(s["statuses"]) == {"SUCCESS": 3, "FAILURE": 2, "IN_PROGRESS": 1}
    assert s["failure_rate"] == pytest.approx(2 / 5)
    assert s["queue_wait"]["p50"] == timedelta(seconds=5)  # every task here waited 5 s
    assert s["run_time"]["p95"] == timedelta(seconds=60)  # and ran 60 s
    assert ("任务超时", 1) in s["reasons"]
    assert "<svg" in response.content.decode()


def timed(n, wait, run, **fields):
    """A task submitted n minutes into the last three hours that waited `wait` seconds in
    the queue and ran for `run`."""
    submitted = ms(timezone.now() - timedelta(hours=3)) + n * 60_000
    start = submitted + wait * 1000
    times = {"submitTime": submitted, "startTime": start, "finishTime": start + run * 1000}
    return record(n, **(times | fields))


@pytest.fixture
def spread(source):
    """Tasks of two sources with waits and run times all different, in the window.

    main: 20 successes waiting 1 s .. 20 s and running 15 s .. 205 s (in another order),
    and tasks that must not count: a failure, one still running, one never started.
    other: 10 successes waiting 30 s .. 300 s and running 7 s .. 70 s.
    """
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:8")
    main = [timed(k, wait=k, run=10 * ((7 * k) % 20) + 15) for k in range(1, 21)]
    main += [
        timed(21, wait=900, run=900, status="FAILURE", failReason="banned"),
        timed(22, wait=800, run=0, status="IN_PROGRESS", progress="40%", finishTime=None),
        timed(23, wait=0, run=0, startTime=None, finishTime=None, status="SUCCESS"),
    ]
    ingest(source, main)
    ingest(other, [timed(100 + k, wait=30 * k, run=7 * k) for k in range(1, 11)])


def test_the_overview_takes_each_sources_percentiles_over_its_finished_successes(client, spread):
    s = client.get("/").context["stats"]
    figures = {f.source.name: f for f in s["sources"]}

    assert (figures["main"].queue_wait["n"], figures["main"].run_time["n"]) == (20, 20)
    assert (figures["other"].queue_wait["n"], figures["other"].run_time["n"]) == (10, 10)
    assert (s["queue_wait"]["n"], s["run_time"]["n"], s["sample_size"]) == (30, 30, 30)


# A percentile is the nearest rank, an observed value (tasks/reports/overview.py): the
# p-th percentile of n values is the ceil(p * n)-th smallest.
def test_the_overview_shows_each_sources_queue_wait_and_run_time_percentiles(client, spread):
    s = client.get("/").context["stats"]
    figures = {f.source.name: f for f in s["sources"]}

    seconds = timedelta(seconds=1)
    # main's waits 1..20: the 10th and the 19th smallest.
    assert figures["main"].queue_wait == {"p50": 10 * seconds, "p95": 19 * seconds, "n": 20}
    # main's runs 15, 25 .. 205: the 10th and the 19th.
    assert figures["main"].run_time == {"p50": 105 * seconds, "p95": 195 * seconds, "n": 20}
    # other's waits 30, 60 .. 300: the 5th and the 10th.
    assert figures["other"].queue_wait == {"p50": 150 * seconds, "p95": 300 * seconds, "n": 10}
    # other's runs 7, 14 .. 70: the 5th and the 10th.
    assert figures["other"].run_time == {"p50": 35 * seconds, "p95": 70 * seconds, "n": 10}
    # All 30: waits 1..20 then 30, 60 .. 300: the 15th (15 s) and the 29th (270 s).
    assert s["queue_wait"] == {"p50": 15 * seconds, "p95": 270 * seconds, "n": 30}
    # Runs 7 14 15 21 25 28 35 35 42 45 49 55 56 63 65 70 75 85 .. 205: the 15th, the 29th.
    assert s["run_time"] == {"p50": 65 * seconds, "p95": 195 * seconds, "n": 30}


def test_the_overview_only_counts_the_recent_window(client, source):
    old = int((timezone.now() - timedelta(days=45)).timestamp() * 1000)
    new = int((timezone.now() - timedelta(hours=2)).timestamp() * 1000)
    ingest(source, [record(1, id="old", submitTime=old), record(2, id="new", submitTime=new)])
    s = client.get("/").context["stats"]
    assert s["total"] == 1
    assert sum(b["total"] for b in s["hourly"]["bars"]) == 1
    assert sum(b["total"] for b in s["daily"]["bars"]) == 1


def test_the_overview_warns_about_a_failing_or_silent_source(client, source, settings):
    quiet = Source.objects.create(name="quiet", base_url="http://127.0.0.1:7")
    SyncRun.objects.create(source=source, kind="light", outcome="failed", error="proxy said 401")
    long_ago = timezone.now() - timedelta(minutes=3 * settings.MJ_FULL_SYNC_MINUTES + 1)
    run = SyncRun.objects.create(source=quiet, kind="full", outcome="ok")
    SyncRun.objects.filter(pk=run.pk).update(started=long_ago, ended=long_ago)

    page = client.get("/").content.decode()

    assert "the last sync failed" in page and "proxy said 401" in page
    assert "no successful sync in the last 45 minutes" in page


def test_a_healthy_source_gets_no_warning(client, source):
    SyncRun.objects.create(source=source, kind="full", outcome="ok", ended=timezone.now())
    assert "sync-warning" not in client.get("/").content.decode()


# Languages


def test_the_pages_speak_simplified_chinese(client, tasks):
    response = client.post(
        reverse("tasks:set_language"), {"language": "zh-hans", "next": reverse("tasks:list")}
    )
    assert response.status_code == 302
    page = client.get(reverse("tasks:list")).content.decode()
    assert 'lang="zh-hans"' in page
    assert "任务" in page and "导出" in page  # "Tasks", "Export"


# Admin


def test_the_task_admin_filters_by_submit_time_and_shows_thumbnails(admin_client, tasks):
    url = reverse("admin:tasks_task_changelist")
    page = admin_client.get(url).content.decode()
    assert 'loading="lazy"' in page and "img_1.png" in page
    assert "Last 24 hours" in page

    filtered = admin_client.get(url + "?submitted=7d")
    assert filtered.status_code == 200
    assert "img_1.png" not in filtered.content.decode()  # the fixtures are from 2023


def test_the_detail_page_links_the_account_that_ran_the_task(client, source):
    other = Source.objects.create(name="other", base_url="http://127.0.0.1:9")
    ingest(source, [record(1, properties={"discordInstanceId": "1118138338562500001"})])
    ingest(source, [record(2, properties={"discordInstanceId": "1118138338562500002"})])
    ingest(source, [record(3)])
    # The same channel seen by two sources: the task's own source's account is the one.
    Account.objects.create(source=other, account_id="x", channel_id="1118138338562500001")
    mine = Account.objects.create(
        source=source, account_id="a1", channel_id="1118138338562500001", name="<b>night</b>"
    )
    page = client.get(Task.objects.get(account="1118138338562500001").get_absolute_url())
    assert f'href="{mine.get_absolute_url()}"' in page.content.decode()
    assert "&lt;b&gt;night&lt;/b&gt;" in page.content.decode()
    # No account synced for the channel: the task list of that channel.
    page = client.get(Task.objects.get(account="1118138338562500002").get_absolute_url())
    assert 'href="/tasks/?account=1118138338562500002"' in page.content.decode()
    # A task that names no account shows none.
    page = client.get(Task.objects.get(account="").get_absolute_url())
    assert "?account=" not in page.content.decode()
