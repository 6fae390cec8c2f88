"""Read the items of a JSON array from a byte stream, each with its exact text.

The proxy's own text of a record is what the mirror keeps, so nothing is lost
or reformatted, and a record can be recognised as unchanged by hashing that
text without serialising it again. The C scanner of the json module does the
parsing, a chunk at a time, so a long array costs little more than json.loads
and is never held whole in memory.
"""

import codecs
import json
from typing import NamedTuple

CHUNK = 1 << 20  # bytes read at a time
WHITESPACE = " \t\n\r"


class Item(NamedTuple):
    text: str  # the item's JSON text exactly as received
    value: object  # the parsed value


class NotAnArray(ValueError):
    pass


def reject_constant(name):
    # NaN and Infinity are not JSON; Python's parser would accept them.
    raise ValueError(f"{name} is not a JSON value")


DECODER = json.JSONDecoder(parse_constant=reject_constant)


def iter_items(stream, chunk=CHUNK):
    """Yield an Item for each element of the JSON array in a binary stream.

    Raises NotAnArray when the body is something else, json.JSONDecodeError
    or ValueError when it is not valid JSON, UnicodeDecodeError when not UTF-8.
    """
    reader = Reader(stream, chunk)
    reader.skip_space()
    if reader.peek() != "[":
        first = reader.peek()
        kind = {"": "an empty body", "{": "an object"}.get(first, "a single value")
        raise NotAnArray(kind)
    reader.pos += 1
    reader.skip_space()
    if reader.peek() == "]":
        reader.pos += 1
    else:
        while True:
            yield reader.decode_value()
            reader.skip_space()
            sep = reader.peek()
            reader.pos += 1
            if sep == "]":
                break
            if sep != ",":
                raise json.JSONDecodeError("expected ',' or ']'", reader.buf, reader.pos - 1)
            reader.skip_space()
    reader.skip_space()
    if reader.peek() != "":
        raise json.JSONDecodeError("extra data after the array", reader.buf, reader.pos)


NUMBER_GOES_ON = ".eE+-0123456789"


class Reader:
    def __init__(self, stream, chunk):
        self.stream = stream
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self, at_least=1):
        """Read until `at_least` more characters are buffered or the stream ends."""
        if self.pos > self.chunk:
            self.buf = self.buf[self.pos :]  # drop what has been handed out
            self.pos = 0
        wanted = len(self.buf) - self.pos + at_least
        while not self.eof and len(self.buf) - self.pos < wanted:
            data = self.stream.read(self.chunk)
            self.eof = not data
            self.buf += self.decoder.decode(data, final=self.eof)

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
            try:
                value, end = DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.eof:
                    raise
                # Most likely cut off at the end of the buffer: read more, try again.
                self.fill(extra)
                extra *= 2
                continue
            if not self.eof and self.may_go_on(value, end):
                self.fill(1)
                continue
            item = Item(self.buf[self.pos : end], value)
            self.pos = end
            return item
