"""The one keyset pager: a task list in pages, in the order of a sort, for the pages and
the mirror API.

WHERE (key, id) beyond the last row seen: never OFFSET, never COUNT(*), so a deep page
costs what the first costs and tasks added meanwhile shift nothing. Rows whose key is
NULL (no submit time; unfinished, for the finish and duration sorts) come after all
others, ordered by id: a second phase of the same keyset (the tail), so both databases
order them alike and each phase is one index range. (One ORDER BY ... NULLS LAST could
not be served by task_submitted_idx: PostgreSQL's DESC puts NULLs first.) The tail is
read only when the keyed rows run out within the page.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db.models import DurationField, ExpressionWrapper, F, Q

from tasks.web.dates import in_utc

# sort parameter -> (key, descending). Every sort ends with the id, so keysets are total.
SORTS = {
    "-submitted": ("submitted", True),
    "submitted": ("submitted", False),
    "-finished": ("finished", True),
    "finished": ("finished", False),
    "-duration": ("duration", True),
    "duration": ("duration", False),
}
DEFAULT_SORT = "-submitted"
SORT_WINDOW = 10_000  # sorting by finish time or duration looks at this many


class Position(NamedTuple):
    """Where a page starts: after the row with this sort key and id. A key of None is a
    place in the tail, among the rows without one."""

    key: datetime | timedelta | None
    pk: int


class Page(NamedTuple):
    rows: list
    after: Position | None  # where it starts; None on the first page
    next: Position | None  # where the next page starts; None on the last


def page(qs, sort, size, after=None, before=None, fields=None):
    """The `size` rows after `after`; or, for a previous-page link, the page that ends
    just before `before`; else the first page.

    Rows are model instances, or with `fields` tuples of (pk, key, *fields).
    """
    qs, key, desc = sortable(qs, sort)
    if after is None and before is not None:
        # Found here, when someone follows the link, so that no page pays for a link
        # it may not need.
        after = start_before(qs, key, desc, before, size)
    rows = []
    if after is None or after.key is not None:
        keyed = qs.filter(**{f"{key}__isnull": False})
        if after is not None:
            keyed = keyed.filter(beyond(key, desc, after))
        keyed = keyed.order_by(order_by(key, desc), order_by("id", desc))
        rows = fetch(keyed, key, fields, size + 1)
    if len(rows) <= size:
        tail = qs.filter(**{f"{key}__isnull": True})
        if after is not None and after.key is None:
            tail = tail.filter(**{"id__lt" if desc else "id__gt": after.pk})
        rows += fetch(tail.order_by(order_by("id", desc)), key, fields, size + 1 - len(rows))
    if len(rows) <= size:
        return Page(rows, after, None)
    rows = rows[:size]
    return Page(rows, after, position_of(rows[-1], key))


def start_before(qs, key, desc, before, size):
    """Where the page of `size` rows that ends just before the row at `before` starts;
    None when that is the first page. The same keyset walked the other way: the `size`
    rows before it, and one more, the row that page starts after."""
    keyed = qs.filter(**{f"{key}__isnull": False})
    backwards = (order_by(key, not desc), order_by("id", not desc))
    if before.key is None:  # in the tail: its rows before that one, then the keyed ones
        tail = qs.filter(**{f"{key}__isnull": True, "id__gt" if desc else "id__lt": before.pk})
        rows = fetch(tail.order_by(order_by("id", not desc)), key, (), size + 1)
        if len(rows) <= size:
            rows += fetch(keyed.order_by(*backwards), key, (), size + 1 - len(rows))
    else:
        keyed = keyed.filter(beyond(key, not desc, before)).order_by(*backwards)
        rows = fetch(keyed, key, (), size + 1)
    return position_of(rows[size], key) if len(rows) > size else None


def fetch(qs, key, fields, limit):
    if fields is None:
        return list(qs[:limit])
    return list(qs.values_list("pk", key, *fields)[:limit])


def sortable(qs, sort):
    """The queryset a sort pages through, with its key and direction."""
    key, desc = SORTS[sort]
    if key != "submitted":
        # No index serves finish time or duration: they sort the newest SORT_WINDOW
        # matching tasks (by submit time, which the index serves), not the whole table.
        newest = qs.order_by("-submitted", "-id").values("pk")[:SORT_WINDOW]
        qs = qs.filter(pk__in=newest)
    if key == "duration":
        qs = qs.annotate(duration=duration_expression())
    return qs, key, desc


def duration_expression():
    return ExpressionWrapper(F("finished") - F("started"), output_field=DurationField())


def order_by(key, desc, nulls_last=False):
    expr = F(key)
    if nulls_last:
        return expr.desc(nulls_last=True) if desc else expr.asc(nulls_last=True)
    return expr.desc() if desc else expr.asc()


def beyond(key, desc, position):
    # (key, id) < (position.key, position.pk), written so the key's own range bounds the scan.
    op, strict = ("lte", "lt") if desc else ("gte", "gt")
    return Q(**{f"{key}__{op}": position.key}) & (
        Q(**{f"{key}__{strict}": position.key}) | Q(**{f"id__{strict}": position.pk})
    )


def position_of(row, key):
    if isinstance(row, tuple):
        return Position(row[1], row[0])
    return Position(getattr(row, key), row.pk)


def fits(position, key):
    """Whether a position can be one of this sort key's: a duration for the duration
    sort, a time for the others (another sort's key may be of another kind)."""
    if position.key is None:
        return True
    return isinstance(position.key, timedelta) == (key == "duration")


# The pages' cursors: `k~<key>~<id>` after the row with this sort key (an ISO datetime,
# or microseconds for the duration sort) and id; `n~~<id>` in the tail. Ids are what a
# bigint holds. (The API writes the same positions its own way: tasks/api/params.py.)
CURSOR = re.compile(r"(?:k~([0-9T:.+Z-]{1,40})|n~)~(-?[0-9]{1,18})")
MICROS = re.compile(r"-?[0-9]{1,18}")


def make_cursor(row, key):
    """The cursor of the page that starts after this row."""
    return encode(position_of(row, key))


def encode(position):
    if position is None:
        return None
    if position.key is None:
        return f"n~~{position.pk}"
    if isinstance(position.key, timedelta):
        return f"k~{position.key // timedelta(microseconds=1)}~{position.pk}"
    return f"k~{position.key.isoformat()}~{position.pk}"


def decode(cursor):
    """The position a cursor names, or None when it is broken (or beyond what a
    datetime or a duration holds)."""
    match = CURSOR.fullmatch(cursor or "")
    if match is None:
        return None
    text, pk = match.groups()
    if text is None:
        return Position(None, int(pk))
    if MICROS.fullmatch(text):
        try:
            return Position(timedelta(microseconds=int(text)), int(pk))
        except OverflowError:
            return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = in_utc(moment)
    return None if moment is None else Position(moment, int(pk))
