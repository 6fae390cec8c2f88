"""Read the items of a JSON array from a byte stream, each with its exact text.

The proxy's own text of a record is what the mirror keeps, so nothing is lost
or reformatted, and a record can be recognised as unchanged by hashing that
text without serialising it again. The C scanner of the json module does the
parsing, a chunk at a time, so a long array costs little more than json.loads
and is never held whole in memory.
"""

import codecs
import json
import re
import sys
from typing import NamedTuple

from tasks.ingest.records import MAX_DEPTH, nested_too_deep

CHUNK = 1 << 20  # bytes read at a time
WHITESPACE = " \t\n\r"
# An item's own level and its fields' MAX_DEPTH levels. A deeper item is not decoded
# whole: the json module's scanner recurses once a level, so how deep it can read
# depends on how deep the stack already is (a sync worker's, a web request's); a few
# hundred levels break a page and a thousand the whole list. The item is read with
# what lies deeper cut out (read_too_deep), and kept as an invalid record.
ITEM_DEPTH = MAX_DEPTH + 1
# A JSON string (its escapes included), a bracket, or a quote that opens a string
# that does not end: what a walk over the nesting of a JSON text needs to see.
NESTING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)


class Item(NamedTuple):
    text: str  # the item's JSON text exactly as received
    value: object  # the parsed value
    # Why this item is not valid JSON although the array around it is sound (a NaN, a
    # raw control character, bytes that are not UTF-8): the sync counts it invalid
    # and goes on with the rest. Its value is read leniently, for its id.
    problem: str = ""


class NotAnArray(ValueError):
    pass


def reject_constant(name):
    # NaN and Infinity are not JSON; Python's parser would accept them.
    raise ValueError(f"{name} is not a JSON value")


DECODER = json.JSONDecoder(parse_constant=reject_constant)
# Reads what DECODER refuses inside one item, so the item can be set aside on its own:
# NaN and Infinity, raw control characters, integers too long for Python to convert.
LENIENT = json.JSONDecoder(parse_constant=str, parse_int=lambda digits: digits, strict=False)
# Bytes that are not UTF-8 are decoded to these (errors="surrogateescape"), and encoded
# back to the same bytes: an item holding one is refused, the rest of the array is read.
NOT_UTF8 = re.compile("[\udc80-\udcff]")


def problem_of(exc):
    """The reason, in words, that DECODER refused an item LENIENT could read."""
    text = str(exc)
    if "control character" in text:
        return "a string holds a raw control character (JSON wants it escaped)"
    if "is not a JSON value" in text:
        return text  # NaN, Infinity
    if "digits" in text:
        return f"a number has more digits than can be read (over {sys.get_int_max_str_digits()})"
    return f"not valid JSON: {text}"


def is_utf8(text):
    """Whether text decoded with errors="surrogateescape" came from UTF-8 alone (three
    times as fast as searching it for NOT_UTF8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_utf8_problem(text):
    found = NOT_UTF8.search(text)
    if found is None:
        return ""
    byte = ord(found.group()) - 0xDC00
    return f"bytes that are not UTF-8 (0x{byte:02x} at character {found.start()} of the record)"


def decode_item(text):
    """The Item whose exact text this is (see Item.problem)."""
    deep = too_deep(text)
    if deep is not None:
        return read_too_deep(text, *deep)
    try:
        return Item(text, DECODER.decode(text), not_utf8_problem(text))
    except ValueError as exc:
        return Item(text, LENIENT.decode(text), problem_of(exc))


def too_deep(text):
    """None when no container in this JSON text lies more than ITEM_DEPTH levels deep;
    else (why, in words; the text with each container below that level cut out and
    null in its place). Costs two counts of characters for all but bracket-heavy texts."""
    if text.count("[") + text.count("{") <= ITEM_DEPTH:
        return None
    is_object = text.lstrip(WHITESPACE)[:1] == "{"
    level = 0
    # The last string of the top level; the key of the top-level field being walked; the
    # first field found too deep.
    key = under = field = None
    pieces, kept_from, cut_at = [], 0, None
    for match in NESTING_TOKEN.finditer(text):
        found = match.group()
        if found[0] == '"':
            if level == 1:
                key = found  # in an object, the key of the container that may follow
        elif found in "[{":
            level += 1
            if level == 2:
                under = key
            elif level == ITEM_DEPTH + 1:
                cut_at = match.start()
                field = under if field is None else field
        else:
            if level == ITEM_DEPTH + 1 and cut_at is not None:
                pieces += [text[kept_from:cut_at], "null"]
                kept_from, cut_at = match.end(), None
            level -= 1
    if cut_at is not None:  # never closed: the text is broken, and reading it says how
        pieces += [text[kept_from:cut_at], "null"]
        kept_from = len(text)
    if not pieces:
        return None
    pieces.append(text[kept_from:])
    if is_object and field is not None:
        why = nested_too_deep(key_of(field))
    else:
        why = f"not a JSON object but an array nested deeper than {ITEM_DEPTH} levels"
    return why, "".join(pieces)


def key_of(token):
    """The key a JSON string token holds."""
    try:
        return json.loads(token)
    except ValueError:
        return token  # a broken escape: decoding the text will refuse it anyway


def read_too_deep(text, why, shallow):
    """The Item of a text too deep to decode whole (too_deep): its value is what lies
    above the cut (the record's id included), its problem says why."""
    try:
        value = DECODER.decode(shallow)
    except ValueError:
        value = LENIENT.decode(shallow)  # ValueError: not JSON even above the cut
    return Item(text, value, why)


def iter_items(stream, chunk=CHUNK):
    """Yield an Item for each element of the JSON array in a binary stream.

    Raises NotAnArray when the body is something else, json.JSONDecodeError when
    the array is not valid JSON. An element that is not (a NaN, bytes that are not
    UTF-8) is yielded with its Item.problem.
    """
    reader = Reader(stream, chunk)
    for _ in reader.elements():
        yield reader.decode_value()


def iter_items_in_place(stream, chunk=CHUNK):
    """Like iter_items, but yield (item, data, start): the item's text as UTF-8 bytes
    and where those bytes start in the stream, so read_item can read it again later.

    The bytes are the stream's own: the text was decoded from them as UTF-8 with
    errors="surrogateescape", which round-trips any byte. Between items there is only
    ASCII ("[", "," and JSON whitespace), a byte a character, so an item's byte offset
    follows from the previous item's end and the characters in between.
    """
    reader = Reader(stream, chunk)
    byte_end = char_end = 0
    for _ in reader.elements():
        char_start = reader.offset()
        item = reader.decode_value()
        data = item.text.encode("utf-8", "surrogateescape")
        start = byte_end + (char_start - char_end)
        byte_end, char_end = start + len(data), char_start + len(item.text)
        yield item, data, start


def read_item(stream, start, size, sound=False):
    """The Item whose text is the `size` bytes at `start` (as iter_items_in_place told).

    sound: iter_items_in_place found the item sound (no Item.problem): it is decoded
    again, not checked again."""
    stream.seek(start)
    text = stream.read(size).decode("utf-8", "surrogateescape")
    if sound:
        return Item(text, DECODER.decode(text))
    return decode_item(text)


NUMBER_GOES_ON = ".eE+-0123456789"


class Reader:
    def __init__(self, stream, chunk):
        self.stream = stream
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.not_utf8 = False  # whether any byte so far was not UTF-8 (NOT_UTF8)
        self.buf = ""
        self.pos = 0
        self.dropped = 0  # characters handed out and dropped from the front of buf
        self.eof = False

    def elements(self):
        """Walk a JSON array, yielding once at the start of each element.

        The caller reads the element (decode_value) before asking for the next.
        """
        self.skip_space()
        if self.peek() != "[":
            first = self.peek()
            kind = {"": "an empty body", "{": "an object"}.get(first, "a single value")
            raise NotAnArray(kind)
        self.pos += 1
        self.skip_space()
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                yield
                self.skip_space()
                sep = self.peek()
                self.pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    raise json.JSONDecodeError("expected ',' or ']'", self.buf, self.pos - 1)
                self.skip_space()
        self.skip_space()
        if self.peek() != "":
            raise json.JSONDecodeError("extra data after the array", self.buf, self.pos)

    def offset(self):
        """The position of the next character in the whole text."""
        return self.dropped + self.pos

    def fill(self, at_least=1):
        """Read until `at_least` more characters are buffered or the stream ends."""
        if self.pos > self.chunk:
            self.buf = self.buf[self.pos :]  # drop what has been handed out
            self.dropped += self.pos
            self.pos = 0
        wanted = len(self.buf) - self.pos + at_least
        while not self.eof and len(self.buf) - self.pos < wanted:
            data = self.stream.read(self.chunk)
            self.eof = not data
            text = self.decoder.decode(data, final=self.eof)
            self.not_utf8 = self.not_utf8 or not is_utf8(text)
            self.buf += text

    def peek(self):
        if self.pos >= len(self.buf):
            self.fill()
        return self.buf[self.pos : self.pos + 1]

    def skip_space(self):
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return
            self.fill()

    def may_go_on(self, value, end):
        """Whether a value may be cut short by the end of the buffer.

        Containers and strings end in their own closing character; a number is
        complete only when something that cannot continue it follows ("12" of
        "123", "1" of "1.5").
        """
        if end >= len(self.buf):
            return True
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return is_number and self.buf[end] in NUMBER_GOES_ON

    def decode_value(self):
        extra = self.chunk
        while True:
            problem = ""
            try:
                try:
                    value, end = DECODER.raw_decode(self.buf, self.pos)
                except ValueError as exc:
                    value, end = LENIENT.raw_decode(self.buf, self.pos)
                    problem = problem_of(exc)
            except json.JSONDecodeError:
                if self.eof:
                    raise  # the structure is broken (the lenient reading's error says how)
                # Most likely cut off at the end of the buffer: read more, try again.
                self.fill(extra)
                extra *= 2
                continue
            except RecursionError:
                # Nested deeper than the stack allows: found by its brackets instead.
                end = self.end_of_nesting()
                if end is None:
                    self.fill(extra)
                    extra *= 2
                    continue
                value = None
            if not self.eof and self.may_go_on(value, end):
                self.fill(1)
                continue
            text = self.buf[self.pos : end]
            self.pos = end
            deep = too_deep(text)
            if deep is not None:
                return read_too_deep(text, *deep)
            if self.not_utf8 and not problem:
                problem = not_utf8_problem(text)
            return Item(text, value, problem)

    def end_of_nesting(self):
        """Where the container at pos ends, by its brackets; None when the buffer ends
        first (read more). At the end of the stream, the structure is broken."""
        level = 0
        for match in NESTING_TOKEN.finditer(self.buf, self.pos):
            found = match.group()
            if found == '"':
                break  # a string that does not end in the buffer
            if found in "[{":
                level += 1
            elif found in "]}":
                level -= 1
                if level == 0:
                    return match.end()
        if self.eof:
            raise json.JSONDecodeError("a container that does not end", self.buf, self.pos)
        return None
