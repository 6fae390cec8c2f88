"""The record normaliser and the state-order rule: pure functions, no database."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.records import (
    InvalidRecord,
    is_stale,
    newest,
    normalise,
    parse_progress,
    state_rank,
)

SAMPLE = {
    "id": "14001929738841620",
    "action": "IMAGINE",
    "status": "SUCCESS",
    "prompt": "猫猫",
    "promptEn": "Cat",
    "description": "/imagine 猫猫",
    "submitTime": 1689231405854,
    "startTime": 1689231442755,
    "finishTime": 1689231544312,
    "progress": "100%",
    "imageUrl": "https://cdn.discordapp.com/attachments/xxx/xxx/xxxx.png",
    "failReason": None,
    "properties": {"finalPrompt": "Cat"},
}


def test_it_types_the_sample_record_from_the_proxy_docs():
    record = normalise(SAMPLE)

    assert record.task_id == "14001929738841620"
    assert record.prompt == "猫猫" and record.prompt_en == "Cat"
    assert record.submitted == datetime(2023, 7, 13, 6, 56, 45, 854000, tzinfo=UTC)
    assert record.progress_pct == 100
    assert record.fail_reason == ""
    assert record.properties == {"finalPrompt": "Cat"}
    assert json.loads(record.raw) == SAMPLE
    assert list(json.loads(record.raw)) == list(SAMPLE)


def test_it_keeps_unknown_fields_in_the_raw_text():
    record = normalise(dict(SAMPLE, buttons=[{"customId": "x", "emoji": "🔄"}], botType="NIJI"))

    assert json.loads(record.raw)["buttons"][0]["emoji"] == "🔄"


def test_ids_that_start_with_zero_stay_strings():
    assert normalise(dict(SAMPLE, id="0123456789012345")).task_id == "0123456789012345"


def test_an_integer_id_is_read_as_its_digits():
    assert normalise(dict(SAMPLE, id=1689231405854001)).task_id == "1689231405854001"


def test_new_api_empty_strings_and_zeros_mean_none():
    record = normalise(dict(SAMPLE, finishTime=0, failReason="", imageUrl="", properties=""))

    assert record.finished is None
    assert record.image_url == "" and record.properties == {}


def test_times_in_seconds_are_recognised():
    assert normalise(dict(SAMPLE, submitTime=1689231405)).submitted.year == 2023


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ("", None)),
        ("0%", ("0%", 0)),
        ("42%", ("42%", 42)),
        ("100%", ("100%", 100)),
        ("", ("", None)),
        ("Stopped", ("Stopped", None)),
        ("abc", ("abc", None)),
        ("250%", ("250%", None)),
        (55, ("55", 55)),
    ],
)
def test_progress_is_parsed_defensively(value, expected):
    assert parse_progress(value) == expected


@pytest.mark.parametrize(
    "record, reason",
    [
        ([], "not a JSON object but an array"),
        (None, "not a JSON object but null"),
        ({"status": "SUCCESS"}, "has no id"),
        ({"id": 1.5}, "id is a number"),
        ({"id": "12", "submitTime": "yesterday"}, "submitTime is a string"),
        ({"id": "12", "submitTime": -5}, "not a moment in time"),
        ({"id": "12", "status": {"a": 1}}, "status is an object"),
        ({"id": "12", "properties": []}, "properties is an array"),
        ({"id": "12", "status": "X" * 65}, "longer than 64"),
        ({"id": "12", "progress": True}, "progress is a boolean"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(record, reason):
    with pytest.raises(InvalidRecord) as info:
        normalise(record)
    assert reason in info.value.reason


def test_an_invalid_record_with_an_id_says_which_task_it_was():
    with pytest.raises(InvalidRecord) as info:
        normalise({"id": "1700000000000001", "submitTime": []})
    assert info.value.task_id == "1700000000000001"


def test_deeply_nested_properties_are_refused_not_crashed_on():
    nested = {}
    for _ in range(5000):
        nested = {"a": nested}
    with pytest.raises(InvalidRecord):
        normalise({"id": "1", "properties": nested})


def test_nul_characters_and_lone_surrogates_are_stored_safely():
    record = normalise({"id": "1", "prompt": "a\x00b\ud800", "properties": {"k\x00": "v"}})

    assert record.prompt == "a\ufffdb\ufffd"
    assert record.raw.encode("utf-8")
    assert json.loads(record.raw)["prompt"] == "a\x00b\ud800"


@pytest.mark.parametrize(
    "older, newer",
    [
        (("NOT_START", None), ("SUBMITTED", 0)),
        (("SUBMITTED", 0), ("MODAL", None)),
        (("MODAL", None), ("IN_PROGRESS", 15)),
        (("IN_PROGRESS", 15), ("IN_PROGRESS", 31)),
        (("IN_PROGRESS", 93), ("SUCCESS", 100)),
        (("IN_PROGRESS", 93), ("FAILURE", None)),
        (("", None), ("NOT_START", None)),
    ],
)
def test_the_state_order_never_moves_backwards(older, newer):
    assert is_stale(state_rank(*older), state_rank(*newer))
    assert not is_stale(state_rank(*newer), state_rank(*older))


def test_a_duplicate_id_in_one_response_keeps_the_furthest_record():
    records = [
        normalise({"id": "1", "status": "IN_PROGRESS", "progress": "62%"}),
        normalise({"id": "1", "status": "SUCCESS", "progress": "100%"}),
        normalise({"id": "1", "status": "IN_PROGRESS", "progress": "31%"}),
    ]
    assert newest(records)["1"].status == "SUCCESS"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["id", "action", "status", "prompt", "promptEn", "description", "state", "progress"]
FIELDS += ["imageUrl", "failReason", "submitTime", "startTime", "finishTime", "properties"]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON) | JSON)
def test_any_json_value_in_any_field_is_either_typed_or_refused(item):
    try:
        record = normalise(item)
    except InvalidRecord as exc:
        assert exc.reason
        return
    assert record.task_id
    assert json.loads(record.raw) == item or item != item  # NaN never equals itself


STATUSES = ["NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "SUCCESS", "FAILURE", "", "WEIRD"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(STATUSES), st.none() | st.integers(0, 100)),
        min_size=1,
        max_size=12,
    )
)
def test_whatever_the_arrival_order_the_kept_state_never_goes_backwards(arrivals):
    kept = None
    for status, pct in arrivals:
        rank = state_rank(status, pct)
        if kept is None or not is_stale(rank, kept):
            previous, kept = kept, rank
            if previous is not None:
                assert rank[0] >= previous[0]
