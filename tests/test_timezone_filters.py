"""Dates typed in the filters are read in TIME_ZONE: on /tasks/, /gallery/, the CSV export
and the mirror API's /mj/task/list alike.

An ISO date means its midnight in TIME_ZONE, and so does a datetime without an offset;
a datetime with an offset (or Z) means that moment wherever the site is. The tasks sit
around both midnights: UTC's, and Shanghai's (16:00 UTC). Every expected answer below is
worked out by hand and written out; the surfaces are driven over the test client only.
"""

import csv
import io
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tasks.ingest.sync import ingest
from tasks.models import Source

pytestmark = pytest.mark.django_db

SHANGHAI, UTC_ZONE = "Asia/Shanghai", "UTC"


def ms(text):
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


# id: submit time in UTC                   in Shanghai (UTC+8, no daylight saving)
SUBMITTED = {
    "a_0229_2359z": "2024-02-29T23:59:59Z",  # 2024-03-01 07:59:59
    "b_0301_0000z": "2024-03-01T00:00:01Z",  # 2024-03-01 08:00:01
    "c_0301_1559z": "2024-03-01T15:59:59Z",  # 2024-03-01 23:59:59
    "d_0301_1600z": "2024-03-01T16:00:00Z",  # 2024-03-02 00:00:00 exactly
    "e_0301_1600z": "2024-03-01T16:00:01Z",  # 2024-03-02 00:00:01
    "f_0302_0000z": "2024-03-02T00:00:01Z",  # 2024-03-02 08:00:01
    "n_undated": None,  # no submit time: any bound leaves it out
}
A, B, C, D, E, F, N = SUBMITTED  # the ids, oldest first

# (query, ids in Shanghai, ids in UTC); ids newest first, as every surface lists them.
# submitted_after is inclusive, submitted_before exclusive.
CASES = {
    "no bounds": ({}, [F, E, D, C, B, A, N], [F, E, D, C, B, A, N]),
    # An ISO date: its midnight in TIME_ZONE (Shanghai: 2024-03-01T16:00Z).
    "after a date": ({"submitted_after": "2024-03-02"}, [F, E, D], [F]),
    "before a date": ({"submitted_before": "2024-03-02"}, [C, B, A], [E, D, C, B, A]),
    "one day": (
        {"submitted_after": "2024-03-01", "submitted_before": "2024-03-02"},
        [C, B, A],  # [2024-02-29T16:00Z, 2024-03-01T16:00Z)
        [E, D, C, B],  # [2024-03-01T00:00Z, 2024-03-02T00:00Z)
    ),
    "the next day": (
        {"submitted_after": "2024-03-02", "submitted_before": "2024-03-03"},
        [F, E, D],
        [F],
    ),
    # A datetime without an offset: in TIME_ZONE too.
    "after a naive datetime": (
        {"submitted_after": "2024-03-02T00:00:01"},
        [F, E],  # from 2024-03-01T16:00:01Z
        [F],  # from 2024-03-02T00:00:01Z: F is that second
    ),
    "before a naive datetime": (
        {"submitted_before": "2024-03-01T23:59:59"},
        [B, A],  # until 2024-03-01T15:59:59Z, C's second, left out
        [E, D, C, B, A],
    ),
    "a naive minute": (
        {"submitted_after": "2024-03-01T08:00", "submitted_before": "2024-03-02T00:00"},
        [C, B],  # [2024-03-01T00:00Z, 2024-03-01T16:00Z)
        [E, D, C],  # [2024-03-01T08:00Z, 2024-03-02T00:00Z)
    ),
    # A datetime with an offset: that moment, whatever TIME_ZONE says.
    "after Z": ({"submitted_after": "2024-03-01T16:00:00Z"}, [F, E, D], [F, E, D]),
    "before +08:00": (
        {"submitted_before": "2024-03-02T00:00:00+08:00"},
        [C, B, A],
        [C, B, A],
    ),
    "between -08:00 and +00:00": (
        {
            "submitted_after": "2024-02-29T16:00:01-08:00",  # 2024-03-01T00:00:01Z
            "submitted_before": "2024-03-01T16:00:01+00:00",
        },
        [D, C, B],
        [D, C, B],
    ),
    # One bound with an offset, the other a date read in TIME_ZONE.
    "aware after, date before": (
        {"submitted_after": "2024-03-01T00:00:00+00:00", "submitted_before": "2024-03-02"},
        [C, B],  # until 2024-03-01T16:00Z
        [E, D, C, B],  # until 2024-03-02T00:00Z
    ),
}


@pytest.fixture
def user_client():
    user = User.objects.create_user("tz-reader")  # no password: hashing one is slow
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def stored():
    source = Source.objects.create(name="tz", base_url="http://127.0.0.1:9")
    records = []
    for task_id, submitted in SUBMITTED.items():
        record = {
            "id": task_id,
            "action": "IMAGINE",
            "status": "SUCCESS",
            "prompt": f"prompt of {task_id}",
            "progress": "100%",
            # An image, so that the gallery shows every one of them too.
            "imageUrl": f"https://cdn.discordapp.com/attachments/1/2/{task_id}.png",
        }
        if submitted is not None:
            record["submitTime"] = ms(submitted)
            record["startTime"] = ms(submitted) + 5_000
            record["finishTime"] = ms(submitted) + 65_000
        records.append(record)
    ingest(source, records)
    return source


class TaskIds(HTMLParser):
    """The task ids a list or gallery page shows: the text of its <a class="task-id">."""

    def __init__(self):
        super().__init__()
        self.ids, self.inside = [], False

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        self.inside = tag == "a" and "task-id" in classes

    def handle_endtag(self, tag):
        self.inside = False

    def handle_data(self, data):
        if self.inside and data.strip():
            self.ids.append(data.strip())


def page_ids(response):
    assert response.status_code == 200
    parser = TaskIds()
    parser.feed(response.content.decode())
    return parser.ids


def csv_ids(response):
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return [row["task_id"] for row in csv.DictReader(io.StringIO(text))]


def api_ids(response):
    assert response.status_code == 200, response.content
    return [record["id"] for record in response.json()]


def every_surface(client, query):
    return {
        "list": page_ids(client.get("/tasks/", query)),
        "gallery": page_ids(client.get("/gallery/", query)),
        "csv": csv_ids(client.get("/tasks/export.csv", query)),
        "api": api_ids(client.get("/mj/task/list", query)),
    }


@pytest.mark.parametrize("zone", [SHANGHAI, UTC_ZONE])
@pytest.mark.parametrize("case", list(CASES))
def test_typed_dates_are_read_in_the_sites_time_zone(settings, user_client, stored, zone, case):
    settings.TIME_ZONE = zone
    # Nothing activates a zone per request: the default one (TIME_ZONE) is what reads them.
    assert timezone.get_current_timezone_name() == zone
    query, in_shanghai, in_utc = CASES[case]
    expected = in_shanghai if zone == SHANGHAI else in_utc

    found = every_surface(user_client, query)

    assert found == {"list": expected, "gallery": expected, "csv": expected, "api": expected}


def test_the_zone_changes_what_a_date_means_but_not_an_offset(settings, user_client, stored):
    # The same two queries in one test, the zone switched between them: nothing about the
    # first zone (a cached default, a connection's zone) may leak into the second.
    date = {"submitted_after": "2024-03-02"}
    aware = {"submitted_after": "2024-03-02T00:00:00+08:00"}
    settings.TIME_ZONE = SHANGHAI
    assert every_surface(user_client, date)["api"] == [F, E, D]
    assert every_surface(user_client, aware)["list"] == [F, E, D]
    settings.TIME_ZONE = UTC_ZONE
    assert every_surface(user_client, date) == {
        "list": [F],
        "gallery": [F],
        "csv": [F],
        "api": [F],
    }
    assert every_surface(user_client, aware)["csv"] == [F, E, D]
