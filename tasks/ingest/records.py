"""Turn one raw proxy record into typed fields, and order records by state.

Pure functions over the standard library, so they are easy to test and fuzz.
A record is whatever one item of a proxy's JSON array was; `normalise` either
returns a `TaskRecord` or raises `InvalidRecord` with a reason a person can read.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tasks.ingest import derive
from tasks.links import link_expiry

STATE_RANK = {
    "NOT_START": 0,
    "SUBMITTED": 1,
    "MODAL": 2,
    "IN_PROGRESS": 3,
    "SUCCESS": 4,
    "FAILURE": 4,
    "CANCEL": 4,
}
FINISHED_RANK = 4  # SUCCESS, FAILURE and CANCEL
# A status never seen before ranks with IN_PROGRESS: a finished record still
# wins over it, and it does not block the running states around it.
UNKNOWN_STATUS_RANK = 3
# "" (new-api's null) or a missing status: anything real wins over it.
NO_STATUS_RANK = -1

MAX_SHORT_TEXT = 64  # status, action and progress columns
# A field nested deeper than this is refused: real records nest a few levels, and
# decoding, walking or showing a value a few hundred levels deep breaks on Python's
# recursion limit (json_items reads deeper items without decoding them whole).
MAX_DEPTH = 64
SURROGATE = re.compile("[\ud800-\udfff]")
# A decoded string can hold a NUL or a lone surrogate only through a \u escape (a raw
# control character or a byte that is not UTF-8 makes the record invalid before): a record
# whose text has no such escape needs no cleaning (clean_text, clean_json).
NEEDS_CLEANING = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
ID_PATTERN = re.compile(r"^[0-9A-Za-z_.:-]{1,64}$")
PERCENT_PATTERN = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*$")
# Epoch values below this are read as seconds (some relays send seconds): in
# milliseconds it would be a moment in 1973, before any Midjourney task.
SECONDS_CUTOFF = 100_000_000_000

TEXT_FIELDS = {
    "action": "action",
    "status": "status",
    "prompt": "prompt",
    "promptEn": "prompt_en",
    "description": "description",
    "state": "state",
    "imageUrl": "image_url",
    "failReason": "fail_reason",
}
TIME_FIELDS = {"submitTime": "submitted", "startTime": "started", "finishTime": "finished"}


class InvalidRecord(ValueError):
    def __init__(self, reason, task_id=""):
        super().__init__(reason)
        self.reason = reason
        self.task_id = task_id


@dataclass
class TaskRecord:
    task_id: str
    action: str
    status: str
    prompt: str
    prompt_en: str
    description: str
    state: str
    progress: str
    progress_pct: int | None
    image_url: str
    fail_reason: str
    submitted: datetime | None
    started: datetime | None
    finished: datetime | None
    properties: dict
    raw: str
    raw_hash: str
    derived: dict = field(default_factory=dict)  # derive.columns(item)

    @property
    def rank(self):
        return state_rank(self.status, self.progress_pct)


def to_json_text(value):
    """The JSON text that is stored for a record: key order kept, non-ASCII as is."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a "\\ud800" escape) cannot be stored as UTF-8; the
        # escaped form is the same JSON value.
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text


def raw_hash(text):
    return raw_hash_of_bytes(text.encode("utf-8"))


def raw_hash_of_bytes(data):
    """raw_hash of the text these UTF-8 bytes encode, without decoding them."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def raw_text_for_invalid(value, limit=1_000_000, text=None):
    """Best-effort text of a record that failed, for the invalid-records table."""
    if text is not None:
        return storable(text)[:limit]
    try:
        text = to_json_text(value)
    except (ValueError, TypeError, RecursionError):
        text = repr(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


@dataclass
class Received:
    """A record as received: its id, its stored JSON text and that text's hash.

    Cheap to make, so an unchanged record is recognised by its hash before any
    field is typed.
    """

    item: dict
    task_id: str
    raw: str
    raw_hash: str


def identify(item, text=None):
    """Return a Received for one raw item, or raise InvalidRecord (no object, no id, no JSON).

    `text` is the item's JSON text as the proxy sent it, kept as it is; without
    it, the item is serialised.
    """
    task_id = task_id_of(item)
    if text is None:
        try:
            text = to_json_text(item)
        except (ValueError, TypeError, RecursionError) as exc:
            raise InvalidRecord(f"cannot be stored as JSON: {exc}", task_id) from exc
    return Received(item, task_id, text, raw_hash(text))


def storable(text):
    """Text a database column takes, showing what it cannot hold: a NUL as the JSON
    escape \\u0000, a byte that was not UTF-8 (a surrogate escape) as \\xff."""
    if "\x00" in text or SURROGATE.search(text):
        text = SURROGATE.sub(shown_surrogate, text.replace("\x00", "\\u0000"))
    return text


def shown_surrogate(match):
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte it escapes
    return f"\\u{code:04x}"


def task_id_if_any(item):
    try:
        return task_id_of(item)
    except InvalidRecord:
        return ""


def task_id_of(item):
    """The task id of one raw item, or InvalidRecord (not an object, no usable id)."""
    if not isinstance(item, dict):
        raise InvalidRecord(f"not a JSON object but {json_type(item)}")
    return parse_id(item.get("id"))


def normalise(item, received=None):
    """Return a TaskRecord for one raw item, or raise InvalidRecord saying why."""
    received = received or identify(item)
    try:
        check_depth(item, received.raw)
        clean = NEEDS_CLEANING.search(received.raw) is not None
        fields = {column: parse_text(item, key, clean) for key, column in TEXT_FIELDS.items()}
        for column in ("action", "status"):
            if len(fields[column]) > MAX_SHORT_TEXT:
                raise InvalidRecord(f"{column} is longer than {MAX_SHORT_TEXT} characters")
        times = {column: parse_time(item, key) for key, column in TIME_FIELDS.items()}
        progress, progress_pct = parse_progress(item.get("progress"), clean)
        properties = parse_properties(item.get("properties"), clean)
        derived = derive.columns(item)
    except InvalidRecord as exc:
        exc.task_id = received.task_id
        raise
    return TaskRecord(
        task_id=received.task_id,
        progress=progress,
        progress_pct=progress_pct,
        properties=properties,
        raw=received.raw,
        raw_hash=received.raw_hash,
        derived=derived,
        **fields,
        **times,
    )


def json_type(value):
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def parse_id(value):
    # Ids are strings of digits; an integer id is read as its decimal text
    # (the raw record keeps the number). Floats would have lost digits already.
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidRecord("has no id")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidRecord(f"id is {json_type(value)}, not a string")
    if not ID_PATTERN.match(value):
        raise InvalidRecord(f"id {value[:80]!r} is not a proxy task id")
    return value


def parse_text(item, key, clean=True):
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} is {json_type(value)}, not a string")
    return clean_text(value) if clean else value


def parse_time(item, key):
    value = item.get(key)
    if value is None or value == "" or value == 0:
        return None  # new-api writes "" and 0 for "not yet"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(f"{key} is {json_type(value)}, not epoch milliseconds")
    if value != value or value < 0:  # NaN or negative
        raise InvalidRecord(f"{key} is {value}, not a moment in time")
    try:
        # An integer of hundreds of digits overflows the division already.
        seconds = value if value < SECONDS_CUTOFF else value / 1000
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidRecord(f"{key} is {value}, out of range") from exc


def parse_progress(value, clean=True):
    """Return (the progress text as stored, its percentage or None)."""
    if value is None:
        return "", None
    if isinstance(value, bool):
        raise InvalidRecord("progress is a boolean")
    if isinstance(value, int | float):
        pct = value if 0 <= value <= 100 else None
        return str(value)[:MAX_SHORT_TEXT], None if pct is None else int(pct)
    if not isinstance(value, str):
        raise InvalidRecord(f"progress is {json_type(value)}, not a string")
    text = (clean_text(value) if clean else value)[:MAX_SHORT_TEXT]
    match = PERCENT_PATTERN.match(value)
    if match:
        number = float(match.group(1))
        if number <= 100:
            return text, int(number)
    return text, None  # "Stopped", "abc", "": kept as text, no number


def check_depth(item, raw):
    """InvalidRecord when a field of the record is nested deeper than MAX_DEPTH levels."""
    # Walking the values is costly; the record's text tells cheaply when it is needed.
    if raw.count("{") + raw.count("[") <= MAX_DEPTH + 1:
        return
    for key, value in item.items():
        if depth(value) > MAX_DEPTH:
            raise InvalidRecord(nested_too_deep(key))


def nested_too_deep(key):
    """The reason a record whose field `key` is nested too deep is refused."""
    shown = key if key.isprintable() and len(key) <= 64 else repr(key[:64])  # no NUL
    return f"{shown}: nested deeper than {MAX_DEPTH} levels"


def parse_properties(value, clean=True):
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord(f"properties is {json_type(value)}, not an object")
    return clean_json(value) if clean else value


def depth(value, level=0):
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((depth(v, level + 1) for v in value), default=level + 1)
    return level


def clean_text(text):
    # PostgreSQL text and jsonb refuse NUL, and UTF-8 cannot hold a lone
    # surrogate; typed columns get U+FFFD instead, the raw record keeps the original.
    if "\x00" in text or SURROGATE.search(text):
        return SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))
    return text


def clean_json(value):
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def state_rank(status, progress_pct):
    """A sortable key for how far along a task is: (state order, progress)."""
    if not status:
        rank = NO_STATUS_RANK
    else:
        rank = STATE_RANK.get(status, UNKNOWN_STATUS_RANK)
    return (rank, -1 if progress_pct is None else progress_pct)


def is_stale(incoming_rank, stored_rank):
    """True when a record is behind what is stored, so it must not replace it.

    Records of the same state and progress are not stale: the later one wins,
    so a change of image, buttons or any other field still arrives.
    """
    in_state, in_pct = incoming_rank
    st_state, st_pct = stored_rank
    if in_state != st_state:
        return in_state < st_state
    if in_pct == -1 or st_pct == -1:
        return False  # no comparable progress ("Stopped", null): take the newer record
    return in_pct < st_pct


def successor(record, stored_rank, stored=None):
    """What to store when `record` arrives after a record of `stored_rank`: the record,
    or None when it is stale.

    A record without a percentage ("Stopped", null, a status of its own) in the same
    state keeps the stored percentage, so a lower one cannot follow it: is_stale alone
    is not transitive through such records.

    `stored` is the stored record itself (anything with status, finished and image_url:
    a TaskRecord, the sync's stored row). With it, two finished records are ordered by
    finished_order first: the later finishTime wins, and a finished task changes to
    another finished status only with a later finish time; among records of one status
    and finish time, an image link signed with a later `ex` (Discord re-signs a link
    when it is asked for again) wins. Only what that leaves open goes by state and
    progress, then arrival.
    """
    (in_state, in_pct), (st_state, st_pct) = record.rank, stored_rank
    both_finished = stored is not None and in_state == st_state == FINISHED_RANK
    if both_finished:
        order = finished_order(record, stored)
        if order:
            return record if order > 0 else None  # a later finish: its own progress
    if is_stale(record.rank, stored_rank):
        return None
    if in_pct == -1 and st_pct != -1 and in_state == st_state:
        return replace(record, progress_pct=st_pct)
    return record


def finished_order(record, stored):
    """+1 when finished `record` is newer than finished `stored`, -1 when older, 0 when
    neither finish time nor link tells (the state-and-progress order decides, then arrival).

    A finish time beats none. The same finish time under another status is older: a
    finished task only changes status with a later finish time. Two records without
    finish times (a proxy that sends none) keep the state-and-progress order, whatever
    their statuses. A link without `ex` (not Discord's, or none) does not order.
    Cheap: links are parsed only for two records of one status and one finish time
    whose links differ.
    """
    if record.finished != stored.finished:
        if record.finished is None or stored.finished is None:
            return -1 if record.finished is None else 1
        return 1 if record.finished > stored.finished else -1
    if record.status != stored.status:
        return 0 if record.finished is None else -1
    if record.image_url == stored.image_url or "ex=" not in record.image_url:
        return 0
    new, old = link_expiry(record.image_url), link_expiry(stored.image_url or "")
    if new is None or old is None or new == old:
        return 0
    return 1 if new > old else -1


def newest(records):
    """Collapse records sharing an id to the newest by successor's order (the last among
    equals)."""
    best = {}
    for record in records:
        current = best.get(record.task_id)
        if current is None:
            best[record.task_id] = record
        elif (kept := successor(record, current.rank, current)) is not None:
            best[record.task_id] = kept
    return best
