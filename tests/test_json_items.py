"""Reading a JSON array item by item, each with its exact text."""

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.ingest.json_items import NotAnArray, iter_items, iter_items_in_place, read_item

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)


# An array of any values, ASCII-escaped or not, compact or indented, read in chunks of
# any size: (values, ascii, indent, chunk).
ANY_ARRAY = given(
    st.lists(VALUES, max_size=8),
    st.booleans(),
    st.sampled_from([None, 2]),
    st.sampled_from([1, 5, 64, 1 << 20]),
)


def read(text, chunk=7):
    return list(iter_items(io.BytesIO(text.encode("utf-8")), chunk=chunk))


@settings(max_examples=200, deadline=None)
@ANY_ARRAY
def test_any_array_reads_back_item_for_item_in_any_chunking(values, ascii, indent, chunk):
    text = json.dumps(values, ensure_ascii=ascii, indent=indent)

    items = read(text, chunk)

    assert [i.value for i in items] == values
    assert [json.loads(i.text) for i in items] == values


@settings(max_examples=200, deadline=None)
@ANY_ARRAY
def test_each_item_is_found_again_by_its_bytes_and_offset(values, ascii, indent, chunk):
    body = json.dumps(values, ensure_ascii=ascii, indent=indent).encode("utf-8")
    stream = io.BytesIO(body)

    placed = list(iter_items_in_place(stream, chunk=chunk))

    assert [item.value for item, _, _ in placed] == values
    for item, data, start in placed:
        assert data == item.text.encode("utf-8") == body[start : start + len(data)]
        assert read_item(stream, start, len(data)) == item


def test_each_item_keeps_the_proxys_exact_text():
    text = '[{"id":"1", "b":1.0,  "a":12345678901234567890123}, {"x":"猫\\u0000"}]'

    items = read(text)

    assert items[0].text == '{"id":"1", "b":1.0,  "a":12345678901234567890123}'
    assert items[1].text == '{"x":"猫\\u0000"}'


@pytest.mark.parametrize(
    "body, error",
    [
        ("", NotAnArray),
        ('{"a": 1}', NotAnArray),
        ("42", NotAnArray),
        ("[1, 2", ValueError),
        ("[1 2]", ValueError),
        ("[1] []", ValueError),
        ('[{"a": 1}', ValueError),
        ("[,]", ValueError),
    ],
)
def test_anything_but_one_whole_array_is_refused(body, error):
    with pytest.raises(error):
        read(body)


@pytest.mark.parametrize(
    "bad, problem",
    [
        (b'{"id":"2","p":NaN}', "NaN is not a JSON value"),
        (b'{"id":"2","p":-Infinity}', "-Infinity is not a JSON value"),
        (b'{"id":"2","p":"a\x00b"}', "raw control character"),
        (b'{"id":"2","seed":' + b"7" * 5000 + b"}", "more digits than can be read"),
        (b'{"id":"2","p":"\xff\xfe"}', "bytes that are not UTF-8 (0xff at character"),
    ],
)
def test_an_item_that_is_not_json_is_handed_out_with_its_problem_and_the_rest_is_read(bad, problem):
    body = b'[{"id":"1"},' + bad + b',{"id":"3"}]'

    items = list(iter_items_in_place(io.BytesIO(body)))

    assert [item.problem for item, _, _ in items] == ["", items[1][0].problem, ""]
    assert problem in items[1][0].problem
    assert [item.value["id"] for item, _, _ in items] == ["1", "2", "3"]
    item, data, start = items[1]
    assert data == bad == body[start : start + len(data)]  # the proxy's own bytes
    assert read_item(io.BytesIO(body), start, len(data)) == item
