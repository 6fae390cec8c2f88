"""The filters by Midjourney's parameters and who asked (mode, version, ar, bot, account,
caller) on the list, the gallery, the exports and the API's /mj/task/list: a trueai
simulator is mirrored over real HTTP, and each filter must return exactly the tasks this
test works out from the records themselves (not through derive.py)."""

import csv
import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tasks.api.tokens import create_token
from tasks.ingest.sync import sync_source
from tasks.models import Source, SyncRun, Task

pytestmark = pytest.mark.django_db

LIST = "/mj/task/list"
PROMPT_PARAMETER = re.compile(r"--(v|niji|ar|seed) ([0-9.:]+)")


def expected_columns(record):
    """What a person reads off a trueai record: its mode, the version, ratio and seed
    after --v/--niji, --ar and --seed in its prompt, the bot, the account, who asked."""
    found = dict(PROMPT_PARAMETER.findall(record["promptEn"] or ""))
    if record["action"] == "DESCRIBE":
        found = {}  # its prompts are the bot's answer: "1️⃣ a cat --ar 1:1 …"
    if "niji" in found:
        version = f"niji {found['niji']}"
    else:
        version = found.get("v") or record["version"].removeprefix("v ")
    return {
        "mode": record["mode"].lower(),
        "version": version,
        "ar": found.get("ar", ""),
        "bot": record["botType"],
        "account": record["properties"]["discordInstanceId"],
        "caller": record["userId"] or record["state"] or "",
    }


@pytest.fixture
def mirrored(start_sim, make_source, clock):
    """A trueai simulator's newest 100 tasks, mirrored, with the records the mirror got."""
    sim = start_sim("trueai", tasks=100)
    source = make_source(sim)
    assert sync_source(source, full=True).outcome == SyncRun.Outcome.OK
    records = [json.loads(raw) for raw in Task.objects.values_list("raw", flat=True)]
    assert len(records) == 100
    return {r["id"]: expected_columns(r) for r in records}


@pytest.fixture
def client():
    c = Client()
    c.force_login(User.objects.create_user("reader"))
    return c


@pytest.fixture
def auth():
    _, token = create_token(User.objects.create_user("script"))
    return {"mj-api-secret": token}


def matching(expected, **wanted):
    """The ids whose columns hold one of the wanted values of every parameter given."""
    return {
        task_id
        for task_id, columns in expected.items()
        if all(columns[name] in values for name, values in wanted.items())
    }


def some_values(expected, name, count):
    values = sorted({columns[name] for columns in expected.values()} - {""})
    assert len(values) >= count, (name, values)
    return values[:count]


def api_ids(client, auth, params):
    response = client.get(LIST, params, headers=auth)
    assert response.status_code == 200, response.content
    return {task["id"] for task in response.json()}


def page_ids(client, url, params):
    """Every task id the page lists for these parameters, following its next pages."""
    seen = []
    params = dict(params)
    while True:
        response = client.get(url, params)
        assert response.status_code == 200
        assert not response.context["form"].errors
        seen += [t.task_id for t in response.context["tasks"]]
        if not response.context["next_cursor"]:
            return seen
        params["cursor"] = response.context["next_cursor"]


def export_ids(client, params):
    response = client.get("/tasks/export.csv", params)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return {row["task_id"] for row in csv.DictReader(io.StringIO(body))}


def cases(expected):
    """(query parameters, the parameters as sets of values) to try."""
    two_callers = some_values(expected, "caller", 2)
    account = some_values(expected, "account", 1)
    out = [
        {"mode": ["relax"]},
        {"mode": ["fast", "turbo"]},
        {"version": ["niji 6"]},
        {"version": ["6.1", "7"]},
        {"ar": ["16:9"]},
        {"ar": ["2:3", "3:4"], "mode": ["fast"]},
        {"bot": ["NIJI_JOURNEY"]},
        {"bot": ["MID_JOURNEY"], "version": ["6.0"]},
        {"account": account},
        {"caller": two_callers},
        {"caller": two_callers, "mode": ["fast", "relax"]},
    ]
    for params in out:
        assert matching(expected, **params), f"the simulator's tasks have none for {params}"
    return out


def test_each_filter_on_the_api_returns_exactly_the_matching_tasks(mirrored, client, auth):
    for params in cases(mirrored):
        assert api_ids(client, auth, params) == matching(mirrored, **params), params


def test_the_api_takes_values_separated_by_commas_and_other_spellings(mirrored, client, auth):
    wanted = matching(mirrored, mode=["fast", "turbo"], version=["6.1", "7"])
    assert api_ids(client, auth, {"mode": "FAST,turbo", "version": "v 6.1,v7"}) == wanted
    wanted = matching(mirrored, mode=["relax"])
    assert api_ids(client, auth, {"mode": "relaxed"}) == wanted


def test_each_filter_on_the_list_and_the_exports_returns_exactly_the_matching_tasks(
    mirrored, client
):
    for params in cases(mirrored):
        wanted = matching(mirrored, **params)
        listed = page_ids(client, "/tasks/", params)
        assert sorted(listed) == sorted(wanted), params
        assert export_ids(client, params) == wanted, params


def test_the_gallery_shows_the_matching_tasks_that_have_an_image(mirrored, client):
    with_image = set(
        Task.objects.exclude(image_url="", thumb_file="").values_list("task_id", flat=True)
    )
    for params in cases(mirrored):
        wanted = matching(mirrored, **params) & with_image
        assert sorted(page_ids(client, "/gallery/", params)) == sorted(wanted), params


def chip_counts(response, name):
    facet = next(
        (f for f in response.context["parameter_facets"] if f["name"] == name), {"chips": []}
    )
    return {chip["value"]: (chip["n"], chip["selected"]) for chip in facet["chips"]}


def test_each_parameters_chips_count_with_the_other_filters_applied(mirrored, client):
    response = client.get("/tasks/", {"mode": "relax", "bot": "MID_JOURNEY"})
    relax_mj = matching(mirrored, mode=["relax"], bot=["MID_JOURNEY"])
    # The mode chips ignore the mode chosen (each says how many choosing it adds) but
    # apply the bot; the version chips apply both.
    modes = chip_counts(response, "mode")
    for mode in ("fast", "relax", "turbo"):
        n = len(matching(mirrored, mode=[mode], bot=["MID_JOURNEY"]))
        assert modes[mode] == (n, mode == "relax")
    versions = chip_counts(response, "version")
    for version, (n, selected) in versions.items():
        assert n == len(matching(mirrored, version=[version]) & relax_mj)
        assert not selected
    assert sum(n for n, _ in versions.values()) == len(relax_mj)  # every task has a version


def test_a_chip_adds_its_value_and_a_chosen_chip_removes_it(mirrored, client):
    response = client.get("/tasks/", {"mode": "relax", "q": "cat"})
    chips = {c["value"]: c for f in response.context["parameter_facets"] for c in f["chips"]}
    assert "mode=relax" not in chips["relax"]["url"] and "q=cat" in chips["relax"]["url"]
    assert "mode=relax" in chips["fast"]["url"] and "mode=fast" in chips["fast"]["url"]
    page = response.content.decode()
    assert 'data-facet="mode" data-value="relax" aria-pressed="true"' in page
    assert '<input type="hidden" name="mode" value="relax">' in page  # the search keeps it


def test_parameters_without_values_show_no_chip_row(start_sim, make_source, client):
    sim = start_sim("novicezk", tasks=30)  # novicezk's proxy sends no mode
    assert sync_source(make_source(sim), full=True).outcome == SyncRun.Outcome.OK
    names = [f["name"] for f in client.get("/tasks/").context["parameter_facets"]]
    assert "mode" not in names and "account" in names


@pytest.mark.parametrize(
    "params, name",
    [
        ({"mode": "slow"}, "mode"),
        ({"version": "six"}, "version"),
        ({"ar": "wide"}, "ar"),
        ({"bot": "mid journey"}, "bot"),
        ({"account": "../1"}, "account"),
        ({"caller": "x" * 201}, "caller"),
        ({"mode": ["fast", "slow"]}, "mode"),
    ],
)
def test_a_value_that_is_no_such_thing_is_a_400_on_the_api_and_named_on_the_page(
    params, name, client, auth
):
    response = client.get(LIST, params, headers=auth)
    assert response.status_code == 400
    assert f"{name}:" in response.json()["error"]
    page = client.get("/tasks/", params)
    assert page.status_code == 200
    assert name in page.context["form"].errors
    assert page.context["form"].values[name] == []  # ignored: the filter is not applied


def test_a_callers_chip_is_escaped_and_one_holding_a_secret_is_not_shown(client):
    from tests.conftest import make_task

    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret="s3cr3t-x9")
    make_task(source, task_id="1700000000000001", caller="<b>bold</b>", mode="fast")
    make_task(source, task_id="1700000000000002", caller="key s3cr3t-x9", mode="fast")
    page = client.get("/tasks/").content.decode()
    assert 'data-facet="caller" data-value="&lt;b&gt;bold&lt;/b&gt;"' in page
    assert "<b>bold</b>" not in page
    assert "s3cr3t-x9" not in page
    # Asked for by name, it filters (the URL, which the page echoes, holds it already)
    # but has no chip either.
    response = client.get("/tasks/", {"caller": "key s3cr3t-x9"})
    assert [t.task_id for t in response.context["tasks"]] == ["1700000000000002"]
    assert 'data-value="key s3cr3t-x9"' not in response.content.decode()
