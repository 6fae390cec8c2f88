"""Talk HTTP to one Midjourney proxy: its four read endpoints, and nothing else.

Arrays come back as `json_items.Item`s: each record with its exact text; the
long task list is checked whole and handed over item by item through a callback,
then read back from its spooled copy by offset only where the caller asks.
Every call has a connect and a read timeout; connection errors and 502/503/504
are retried a few times with backoff; everything that goes wrong surfaces as one
exception type, `ProxyError`, whose message says what to do about it. The
secret travels in a header and is never part of a message or a log line.

A message never quotes the proxy's answer: it is shown on the overview, to everyone
who may log in. What the proxy said, an excerpt of its body, is the error's `detail`,
kept for staff (the admin's sync run page) and the operator's shell, masked. Redirects
are followed only on the source's own scheme, host and port (README.md, "How the sync
works"): one anywhere else is refused before anything is sent there, so a proxy cannot
point the sync at a service inside our network and have us show its answer.
"""

import contextlib
import functools
import io
import logging
import re
import tempfile
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from tasks.archive.fetch import media_type
from tasks.ingest.json_items import (
    WHITESPACE,
    NotAnArray,
    decode_item,
    iter_items,
    iter_items_in_place,
    read_item,
)

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a list body larger than this goes to a temp file
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}


class ProxyError(Exception):
    """Why a call failed. str(): words for anyone, never a byte of the proxy's answer;
    `detail`: what the proxy answered (an excerpt), for staff and the operator only."""

    def __init__(self, message, status=None, detail=""):
        super().__init__(message)
        self.status = status
        self.detail = detail


class RedirectRefused(ProxyError):
    """The proxy redirected off its own scheme, host and port."""


class NoSuchEndpoint(ProxyError):
    """The proxy does not serve this endpoint (404, or an HTML page)."""


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def is_read_timeout(exc):
    # urllib3 reports a read timeout, under its retry wrapper or mid-body, as a
    # connection error whose cause is a ReadTimeoutError.
    while exc is not None:
        if isinstance(exc, ReadTimeoutError | requests.exceptions.ReadTimeout):
            return True
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, ReadTimeoutError):
            return True
        exc = exc.__context__
    return False


def origin(url):
    """(scheme, host, port) of a URL, the port filled in from the scheme; None if the URL
    has no host or a port that is not a number."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


def shown_origin(found):
    if found is None:
        return "an address that is not a valid URL"
    scheme, host, port = found
    host = CONTROL.sub("", host)[:100]
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


class ProxySession(requests.Session):
    """A session that follows a redirect only on the source's own scheme, host and port.

    Anywhere else (another port of the proxy's host, an internal service, a cloud's
    metadata address, https instead of http) is refused before anything is sent there,
    the secret above all. Checked twice: on the Location the proxy sent, and on the URL
    requests built from it, just before it would send the request.
    """

    def __init__(self, base_url):
        super().__init__()
        self.origin = origin(base_url)
        self.max_redirects = MAX_REDIRECTS

    def get_redirect_target(self, resp):
        location = super().get_redirect_target(resp)
        if location:
            # Relative and scheme-relative (//host/path) locations, as requests reads them.
            self.check_redirect(resp, urljoin(resp.url, location))
        return location

    def rebuild_auth(self, prepared_request, response):
        self.check_redirect(response, prepared_request.url)
        super().rebuild_auth(prepared_request, response)

    def check_redirect(self, response, target):
        found = origin(target)
        if found is not None and found == self.origin:
            return
        response.close()
        raise RedirectRefused(
            f"{redact(response.url)} redirected to {shown_origin(found)}, off the source's "
            f"own address ({shown_origin(self.origin)}): the redirect was refused. A proxy "
            "is followed only on its own scheme, host and port; if it has moved, change "
            "the source's URL",
            response.status_code,
        )


def redact(url):
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


class ProxyClient:
    def __init__(
        self,
        base_url,
        headers=None,
        *,
        connect_timeout=5.0,
        read_timeout=60.0,
        retries=2,
        max_body_mb=512,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_body = max_body_mb * 1024 * 1024
        self.max_body_mb = max_body_mb
        self.session = ProxySession(self.base_url)
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,  # a read that timed out is not retried: the proxy may be busy with it
            status=retries,
            status_forcelist=(502, 503, 504),
            allowed_methods=None,  # every call here is a read, POST list-by-condition too
            backoff_factor=0.5,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # The four endpoints

    @contextlib.contextmanager
    def list_tasks(self, note, keep_alive=None):
        """GET /mj/task/list, downloaded to a spooled copy and checked whole before any use.

        While checking, note(item, data, start) is called for each item, with its
        exact UTF-8 bytes and their offset in the copy, so the caller keeps what it
        needs (an id, a hash) rather than every value. A body cut off halfway fails
        the call before anything is yielded. Yields read(start, size), which reads
        one item back from the copy as an Item. keep_alive(), when given, is called
        as the download and the check go on (a long one must not lose its lease).
        """
        keep_alive = keep_alive or (lambda: None)
        url = self.url("/mj/task/list")
        with self.request("GET", url) as response:
            spool = self.download(response, url, keep_alive)
        with spool:
            with self.array_errors(spool, url, response.status_code):
                for item, data, start in iter_items_in_place(spool):
                    note(item, data, start)
                    keep_alive()
            yield functools.partial(read_item, spool)

    def queue(self):
        """GET /mj/task/queue; None when the proxy has no queue endpoint."""
        url = self.url("/mj/task/queue")
        try:
            return self.get_json_array("GET", url)
        except NoSuchEndpoint:
            return None

    def list_by_condition(self, ids):
        url = self.url("/mj/task/list-by-condition")
        return self.get_json_array("POST", url, json={"ids": list(ids)})

    def fetch(self, task_id):
        """GET /mj/task/{id}/fetch: the task as an Item (its exact text and value);
        None when the proxy does not know the id."""
        url = self.url(f"/mj/task/{quote(str(task_id), safe='')}/fetch")
        response = self.request("GET", url, not_found_ok=True)
        body = self.read_body(response, url)
        # Not found, per kind of proxy: novicezk 200 + empty body, trueai 204,
        # new-api 400 task_no_found, and a plain 404.
        if response.status_code in (204, 404) or not body.strip():
            return None
        if response.status_code == 400:
            if b"task_no_found" in body:
                return None
            raise ProxyError(
                f"400 from {redact(url)} ({size_of(body)})", 400, detail=self.excerpt(body)
            )
        item = self.parse_json(body, url, response)
        if item.value is None:
            return None
        if not isinstance(item.value, dict):
            kind = type(item.value).__name__
            raise ProxyError(f"{redact(url)} returned {kind}, not a task object")
        return item  # with its Item.problem when it is an object but not valid JSON

    # The Discord accounts (tasks/ingest/accounts.py). Their records hold credentials in
    # clear: callers scrub them first thing, and no error here quotes a byte of them.

    def account_list(self):
        """GET /mj/account/list (novicezk 2.5+): every account, a bare array."""
        return self.get_json_array("GET", self.url("/mj/account/list"))

    def admin_accounts(self, admin_token, page, size):
        """POST /mj/admin/accounts (trueai): one page of accounts, as decoded JSON
        ({"list": [...], "pagination": {...}}). trueai takes the bare admin token in
        Authorization (no "Bearer"), which wins over the task secret's header."""
        url = self.url("/mj/admin/accounts")
        body = {
            "pagination": {"current": page, "pageSize": size},
            "sort": {"predicate": "", "reverse": False},
            "search": {},
        }
        response = self.request("POST", url, json=body, headers={"Authorization": admin_token})
        return self.parse_json(self.read_body(response, url), url, response).value

    # Plumbing

    def url(self, path):
        return self.base_url + path

    def request(self, method, url, *, not_found_ok=False, **kwargs):
        where = redact(url)
        try:
            response = self.session.request(
                method, url, timeout=self.timeout, stream=True, allow_redirects=True, **kwargs
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise ProxyError(
                f"timed out connecting to {where} after {self.timeout[0]:g} s: "
                "check that the proxy runs and the source's URL"
            ) from exc
        except requests.exceptions.ReadTimeout as exc:
            raise self.read_timeout(where) from exc
        except requests.exceptions.RetryError as exc:
            raise ProxyError(f"{where} kept failing after retries: {exc}") from exc
        except requests.exceptions.ConnectionError as exc:
            if is_read_timeout(exc):
                raise self.read_timeout(where) from exc
            raise ProxyError(
                f"cannot connect to {where}: check that the proxy runs and the source's URL"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise ProxyError(f"request to {where} failed: {exc}") from exc

        status = response.status_code
        if not_found_ok and status in (204, 400, 404):
            return response
        if status in (401, 403):
            response.close()
            raise ProxyError(
                f"{status} from {where}: the proxy refused the credentials; "
                "check the source's secret and auth header",
                status,
            )
        if status == 404:
            response.close()
            raise NoSuchEndpoint(f"404 from {where}: this server has no such endpoint", 404)
        if status == 429:
            wait = CONTROL.sub("", response.headers.get("Retry-After", ""))[:40].strip()
            response.close()
            hint = ""
            if wait:
                hint = f" (it asks to wait {wait} s)" if wait.isdigit() else f" (until {wait})"
            raise ProxyError(f"429 from {where}: the proxy is rate limiting us{hint}", 429)
        if status >= 400:
            limit = 2000
            body = self.read_body(response, url, limit=limit, partial=True)
            raise ProxyError(
                f"{status} from {where} ({size_of(body, limit)})",
                status,
                detail=self.excerpt(body),
            )
        if "html" in response.headers.get("Content-Type", "").lower():
            response.close()
            path = urlsplit(url).path
            raise NoSuchEndpoint(
                f"{where} returned an HTML page: this server has no {path} "
                "(an API relay? then set the source's kind to relay)",
                status,
            )
        return response

    def read_timeout(self, where):
        limit = f"{self.timeout[1]:g} s"
        return ProxyError(f"{where} did not answer within {limit} (MJ_READ_TIMEOUT raises it)")

    def read_body(self, response, url, limit=None, partial=False):
        """Read a whole (small) body, within the size limit."""
        limit = limit or self.max_body
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > limit:
                    if partial:
                        chunks.append(chunk)
                        break
                    self.too_large(url)
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            if is_read_timeout(exc):
                raise self.read_timeout(redact(url)) from exc
            raise ProxyError(
                f"{redact(url)} broke off while sending its answer ({exc.__class__.__name__})",
                # The text may quote what was read (a chunk size): staff only.
                detail=CONTROL.sub(" ", str(exc))[:500],
            ) from exc
        finally:
            response.close()
        return b"".join(chunks)

    def download(self, response, url, keep_alive):
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            response.close()
            self.too_large(url)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        size = 0
        try:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > self.max_body:
                    self.too_large(url)
                spool.write(chunk)
                keep_alive()
        except requests.exceptions.RequestException as exc:
            spool.close()
            if is_read_timeout(exc):
                raise self.read_timeout(redact(url)) from exc
            raise ProxyError(
                f"{redact(url)} broke off after {size:,} bytes: {exc.__class__.__name__}"
            ) from exc
        except ProxyError:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def too_large(self, url):
        raise ProxyError(
            f"{redact(url)} sent more than {self.max_body_mb} MB, the limit; "
            "MJ_MAX_BODY_MB raises it"
        )

    @contextlib.contextmanager
    def array_errors(self, stream, url, status):
        """Turn what reading a JSON array from stream raises into a ProxyError saying why:
        the reason and the size in the message, the start of the body in its detail."""
        where = redact(url)
        try:
            yield
        except NotAnArray as exc:
            size, start = self.start_of(stream)
            raise ProxyError(
                f"{where} returned {exc}, not a list of tasks (HTTP {status}, {size:,} bytes)",
                detail=start,
            ) from exc
        except ValueError as exc:  # JSONDecodeError included; its text quotes no body
            raise ProxyError(
                f"{where} returned broken JSON: {exc}", detail=self.start_of(stream)[1]
            ) from exc
        except RecursionError as exc:
            raise ProxyError(f"{where} returned JSON nested too deeply to read") from exc

    def start_of(self, stream):
        """(size, an excerpt of the first bytes) of a spooled body; "" for an empty one."""
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        return size, self.excerpt(stream.read(200)) if size else ""

    def get_json_array(self, method, url, **kwargs):
        response = self.request(method, url, **kwargs)
        stream = io.BytesIO(self.read_body(response, url))
        with self.array_errors(stream, url, response.status_code):
            return list(iter_items(stream))

    def parse_json(self, body, url, response):
        """One JSON value as an Item, read as a list's items are (json_items.decode_item)."""
        try:
            return decode_item(body.decode("utf-8", "surrogateescape").strip(WHITESPACE))
        except ValueError as exc:
            ctype = media_type(response.headers.get("Content-Type"))
            raise ProxyError(
                f"{redact(url)} returned something that is not JSON ({ctype}, {size_of(body)})",
                detail=self.excerpt(body),
            ) from exc

    @staticmethod
    def excerpt(body, size=200):
        """The start of a body as text, for staff (ProxyError.detail), never a message."""
        # Control characters (a NUL above all) have no place in a message or a database.
        text = CONTROL.sub(" ", body[:size].decode("utf-8", "replace")).strip() or "(empty body)"
        return text + ("…" if len(body) > size else "")


def size_of(body, limit=None):
    """How much the proxy answered, in words that quote none of it."""
    if not body:
        return "an empty body"
    if limit is not None and len(body) > limit:
        return f"more than {limit:,} bytes"
    return f"{len(body):,} bytes"
