"""The record normaliser and the state-order rule: pure functions, no database."""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.ingest.records import (
    InvalidRecord,
    Received,
    is_stale,
    newest,
    normalise,
    parse_progress,
    raw_hash,
    state_rank,
    successor,
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


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\uD800", "\\uDFFF"])
def test_a_proxys_own_text_with_an_escaped_nul_or_surrogate_is_cleaned(escape):
    # As the sync receives it: the proxy's text, whatever the case of its escapes.
    text = (
        f'{{"id":"1","prompt":"a{escape}","progress":"5{escape}","properties":{{"k":"{escape}"}}}}'
    )
    item = json.loads(text)
    record = normalise(item, Received(item, "1", text, raw_hash(text)))

    assert (record.prompt, record.progress, record.properties) == (
        "a\ufffd",
        "5\ufffd",
        {"k": "\ufffd"},
    )
    assert record.raw == text


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
USABLE_ID = st.from_regex(r"[0-9]{16,19}", fullmatch=True) | st.integers(1, 2**63)
# Mostly a usable id, so the other fields are typed rather than refused at the id.
RECORD_WITH_ID = st.builds(
    lambda task_id, fields: {**fields, "id": task_id},
    USABLE_ID,
    st.dictionaries(st.sampled_from(FIELDS[1:]) | st.text(max_size=8), JSON, max_size=10),
)
ANY_ITEM = RECORD_WITH_ID | st.dictionaries(st.sampled_from(FIELDS), JSON) | JSON


@settings(max_examples=600, deadline=None)
@given(ANY_ITEM)
def test_any_json_value_in_any_field_is_either_typed_or_refused(item):
    try:
        record = normalise(item)
    except InvalidRecord as exc:
        assert exc.reason
        return
    assert record.task_id
    assert json.loads(record.raw) == item or item != item  # NaN never equals itself


@settings(max_examples=300, deadline=None)
@given(RECORD_WITH_ID)
def test_a_record_with_a_usable_id_is_refused_only_for_a_field_it_names(item):
    try:
        normalise(item)
    except InvalidRecord as exc:
        # A field's own fault names the field; the rest concern the whole record.
        named = [f for f in FIELDS[1:] if f in exc.reason]
        assert named or exc.reason.startswith(("cannot be stored as JSON", "properties are nested"))


STATUSES = ["NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "SUCCESS", "FAILURE", "", "WEIRD"]
PROGRESS = st.none() | st.integers(0, 100).map("{}%".format) | st.sampled_from(["Stopped", ""])


def furthest(arrivals):
    """(state, percentage) the kept record must have: the furthest state, and the
    highest percentage seen in it (-1 when none came with one)."""
    ranks = [state_rank(status, parse_progress(progress)[1]) for status, progress in arrivals]
    top = max(state for state, _ in ranks)
    return (top, max(pct for state, pct in ranks if state == top))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STATUSES), PROGRESS), min_size=1, max_size=12))
def test_whatever_the_arrival_order_the_kept_state_never_goes_backwards(arrivals):
    kept = None
    for n, (status, progress) in enumerate(arrivals):
        record = normalise({"id": "1", "status": status, "progress": progress, "n": n})
        if kept is None:
            kept = record
        elif (successor_ := successor(record, kept.rank)) is not None:
            assert successor_.rank >= kept.rank
            kept = successor_
    assert kept.rank == furthest(arrivals)
    # The same arrivals in one answer (duplicates of an id) keep the same state.
    records = [
        normalise({"id": "1", "status": s, "progress": p, "n": n})
        for n, (s, p) in enumerate(arrivals)
    ]
    assert newest(records)["1"].rank == furthest(arrivals)


def test_a_percentage_is_not_lowered_through_a_word_in_one_answer():
    records = [
        normalise({"id": "1", "status": "IN_PROGRESS", "progress": progress})
        for progress in ("62%", "Stopped", "15%")
    ]
    kept = newest(records)["1"]
    assert (kept.progress, kept.progress_pct) == ("Stopped", 62)


def test_a_percentage_is_not_lowered_through_a_status_of_the_same_rank():
    running = normalise({"id": "1", "status": "IN_PROGRESS", "progress": "93%"})
    paused = successor(normalise({"id": "1", "status": "PAUSED_BY_ALIENS"}), running.rank)
    assert paused.progress_pct == 93
    assert (
        successor(normalise({"id": "1", "status": "IN_PROGRESS", "progress": "15%"}), paused.rank)
        is None
    )
