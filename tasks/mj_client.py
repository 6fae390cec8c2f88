"""Talk HTTP to one Midjourney proxy: its four read endpoints, and nothing else.

Arrays come back as `json_items.Item`s: each record with its exact text; the
long task list is checked whole and handed over item by item through a callback,
then read back from its spooled copy by offset only where the caller asks.
Every call has a connect and a read timeout; connection errors and 502/503/504
are retried a few times with backoff; everything that goes wrong surfaces as one
exception type, `ProxyError`, whose message says what to do about it. The
secret travels in a header and is never part of a message or a log line.
"""

import contextlib
import functools
import io
import logging
import re
import tempfile
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .json_items import (
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


class ProxyError(Exception):
    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


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


class ProxySession(requests.Session):
    """A session that never sends the proxy's secret to another host on a redirect.

    requests strips only Authorization when a redirect leaves the host; the
    secret may travel in any header (mj-api-secret by default).
    """

    def __init__(self, secret_headers):
        super().__init__()
        self.secret_headers = list(secret_headers)

    def rebuild_auth(self, prepared_request, response):
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in self.secret_headers:
                prepared_request.headers.pop(name, None)


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
        self.session = ProxySession(secret_headers=headers or {})
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
            with self.array_errors(spool, url):
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
            raise ProxyError(f"400 from {redact(url)}: {self.excerpt(body)}", 400)
        item = self.parse_json(body, url, response)
        if item.value is None:
            return None
        if not isinstance(item.value, dict):
            kind = type(item.value).__name__
            raise ProxyError(f"{redact(url)} returned {kind}, not a task object")
        return item  # with its Item.problem when it is an object but not valid JSON

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
            body = self.read_body(response, url, limit=2000, partial=True)
            raise ProxyError(f"{status} from {where}: {self.excerpt(body)}", status)
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
            raise ProxyError(f"{redact(url)} broke off while sending its answer: {exc}") from exc
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
    def array_errors(self, stream, url):
        """Turn what reading a JSON array from stream raises into a ProxyError saying why."""
        where = redact(url)
        try:
            yield
        except NotAnArray as exc:
            stream.seek(0)
            raise ProxyError(
                f"{where} returned {exc}, not a list of tasks: {self.excerpt(stream.read(200))}"
            ) from exc
        except ValueError as exc:  # JSONDecodeError included
            raise ProxyError(f"{where} returned broken JSON: {exc}") from exc
        except RecursionError as exc:
            raise ProxyError(f"{where} returned JSON nested too deeply to read") from exc

    def get_json_array(self, method, url, **kwargs):
        response = self.request(method, url, **kwargs)
        stream = io.BytesIO(self.read_body(response, url))
        with self.array_errors(stream, url):
            return list(iter_items(stream))

    def parse_json(self, body, url, response):
        """One JSON value as an Item, read as a list's items are (json_items.decode_item)."""
        try:
            return decode_item(body.decode("utf-8", "surrogateescape").strip(WHITESPACE))
        except ValueError as exc:
            ctype = response.headers.get("Content-Type", "no content type")
            raise ProxyError(
                f"{redact(url)} returned something that is not JSON ({ctype}): {self.excerpt(body)}"
            ) from exc

    @staticmethod
    def excerpt(body, size=200):
        # Control characters (a NUL above all) have no place in a message or a database.
        text = CONTROL.sub(" ", body[:size].decode("utf-8", "replace")).strip() or "(empty body)"
        return text + ("…" if len(body) > size else "")
