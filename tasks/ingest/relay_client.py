"""Read a new-api relay's admin list of the Midjourney tasks it relayed: `GET /api/mj/`.

A relay has no `/mj/task/list` (it answers an HTML page) and its `/mj/task/...` endpoints
answer a user key with that user's tasks only; its admin list holds every task, as rows
of its own (relay_rows.py turns one into a task). Two envelopes exist (FACTS-2.md §3.1):
since mid-2025 `{"success", "data": {"page", "page_size", "total", "items"}}` with `p`
1-based, before that `{"success", "data": [rows]}` with `p` 0-based and 10 rows a page.
The first request asks for `p=0`, which both read as their first page; the answer says
which envelope the relay speaks, and so how to count the pages after it.

The admin credential goes in this list's requests only (never to `/mj/task/...`):
`Authorization: Bearer <access token>` and `New-Api-User: <the admin's user id>`, which
every version since 2024 accepts. Errors are the client's ProxyError, worded for this
list; like the client's, a message never quotes the relay's answer (its `detail` does).
"""

import io
from dataclasses import dataclass
from json.decoder import scanstring

from tasks.ingest.client import NoSuchEndpoint, ProxyError, redact
from tasks.ingest.json_items import LENIENT, WHITESPACE, iter_items

PATH = "/api/mj/"
PAGE_SIZE = 100  # new-api's largest page
CHECK_CREDENTIAL = (
    "check the source's admin token (the access token of a new-api admin, from its "
    "personal settings) and admin user (that admin's numeric user id, sent as New-Api-User)"
)


@dataclass
class RowsPage:
    items: list  # json_items.Item: each row with its exact text
    total: int | None  # None in the older envelope, which gives none
    page_size: int  # what the relay used
    old_envelope: bool


class RelayAdmin:
    """The admin list of one relay, over a ProxyClient's session, timeouts and retries."""

    def __init__(self, client, token, user=""):
        if not token:
            raise ProxyError(
                "the source is a new-api relay but has no admin token: set it in the "
                "source's form, or MJ_ADMIN_TOKEN and MJ_ADMIN_USER for the default source"
            )
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        if user:
            self.headers["New-Api-User"] = str(user)

    def pages(self, start_ms=None, end_ms=None):
        """Every page of rows submitted between start_ms and end_ms (both inclusive,
        None: unbounded), newest first, as the relay orders them (row id desc)."""
        p, previous = 0, None
        while True:
            page = self.page(p, start_ms=start_ms, end_ms=end_ms)
            ids = [row_id(item.value) for item in page.items]
            if page.items and ids == previous:
                raise ProxyError(
                    f"{redact(self.client.url(PATH))} answered page {p} with the rows of the "
                    "page before: it ignores the page parameter p, so its list cannot be read "
                    "whole"
                )
            if page.items:
                yield page
            if self.is_last(page, p):
                return
            # The older envelope counts pages from 0, the newer from 1 (p=0 read as 1).
            p = p + 1 if page.old_envelope or p else 2
            previous = ids

    @staticmethod
    def is_last(page, p):
        if not page.items:
            return True
        if page.old_envelope:
            return False  # its page size is the relay's own: only an empty page ends it
        read = max(p, 1) * page.page_size
        return len(page.items) < page.page_size or (page.total is not None and read >= page.total)

    def by_mj_id(self, mj_id):
        """The rows of one task (its mj_id), however old."""
        return self.page(0, mj_id=mj_id).items

    def page(self, p, *, start_ms=None, end_ms=None, mj_id=None):
        params = {"p": p, "page_size": PAGE_SIZE}
        if start_ms is not None:
            params["start_timestamp"] = int(start_ms)
        if end_ms is not None:
            params["end_timestamp"] = int(end_ms)
        if mj_id is not None:
            params["mj_id"] = mj_id
        url = self.client.url(PATH)
        where = redact(url)
        try:
            response = self.client.request("GET", url, params=params, headers=self.headers)
        except NoSuchEndpoint as exc:
            raise ProxyError(
                f"{where} is not new-api's admin list ({exc.status or 'HTML page'}): check "
                "the source's URL (new-api's own address, before /api/mj/) and its kind",
                exc.status,
            ) from exc
        except ProxyError as exc:
            if exc.status in (401, 403):
                raise ProxyError(
                    f"{exc.status} from {where}: the relay refused the admin credential; "
                    + CHECK_CREDENTIAL,
                    exc.status,
                ) from exc
            raise
        body = self.client.read_body(response, url)
        return read_envelope(body, where, self.client.excerpt)


def read_envelope(body, where, excerpt):
    """The RowsPage in a body of the admin list, or a ProxyError saying what is wrong."""
    text = body.decode("utf-8", "surrogateescape")
    try:
        envelope = LENIENT.decode(text.strip(WHITESPACE))
    except ValueError as exc:
        raise ProxyError(f"{where} returned something that is not JSON ({len(body):,} bytes)",
                         detail=excerpt(body)) from exc  # fmt: skip
    except RecursionError as exc:
        raise ProxyError(f"{where} returned JSON nested too deeply to read") from exc
    if not isinstance(envelope, dict) or "success" not in envelope:
        raise ProxyError(
            f"{where} did not answer as new-api does (no success field; {len(body):,} bytes): "
            "check the source's URL and kind",
            detail=excerpt(body),
        )
    if envelope["success"] is not True:
        # Older versions refuse a bad access token or a non-admin with HTTP 200 this way.
        raise ProxyError(
            f"{where} refused the request (success: false): " + CHECK_CREDENTIAL,
            detail=excerpt(body),
        )
    data = envelope.get("data")
    if isinstance(data, list):
        path, total, size, old = ("data",), None, len(data), True
    elif isinstance(data, dict) and isinstance(data.get("items"), list):
        path, total, size, old = ("data", "items"), count(data.get("total")), None, False
        size = count(data.get("page_size")) or PAGE_SIZE
    elif isinstance(data, dict) and data.get("items") is None and count(data.get("total")) == 0:
        return RowsPage([], 0, PAGE_SIZE, False)  # no rows at all
    else:
        raise ProxyError(
            f"{where} answered without a list of rows (data is neither an array nor an "
            "object with items): not a new-api version this mirror knows",
            detail=excerpt(body),
        )
    span = value_span(text, path)
    items = list(iter_items(io.BytesIO(span.encode("utf-8", "surrogateescape"))))
    return RowsPage(items, total, size, old)


def count(value):
    """A count the envelope gives (read leniently: its digits), or None."""
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def row_id(value):
    return value.get("mj_id") if isinstance(value, dict) else None


def value_span(text, path):
    """The exact text of the value at `path` (keys of nested objects) in a JSON text
    already known to be sound; the last of equal keys, as json.loads keeps it."""
    start, end = 0, len(text)
    for key in path:
        start, end = member(text, start, key)
    return text[start:end]


def member(text, pos, key):
    pos = skip(text, pos)  # at the object's "{"
    pos = skip(text, pos + 1)
    found = None
    while text[pos] == '"':
        name, pos = scanstring(text, pos + 1, False)
        pos = skip(text, skip(text, pos) + 1)  # past the ":"
        _, end = LENIENT.raw_decode(text, pos)
        if name == key:
            found = (pos, end)
        pos = skip(text, end)
        if text[pos] == ",":
            pos = skip(text, pos + 1)
    return found


def skip(text, pos):
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    return pos
