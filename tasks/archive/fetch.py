"""Download one image from a URL we do not control, without being turned against our network.

The rules (README.md, "The image archive"): http and https only; every address a host
resolves to is checked before connecting, on every redirect hop, and the connection goes to
the address that was checked (so a DNS answer cannot change in between); private and
loopback addresses only for a source's own host and port, at the addresses that host had
when the source was last synced (`resolve_origin`, kept in Source.resolved_addresses), or
when configured; a size limit, a timeout on every socket operation and a deadline on the
whole download. What the bytes are is decided later, by Pillow or PyAV (tasks/archive/passes.py),
never by the server's Content-Type. No error quotes what a server sent (its bytes, a status line
that is not HTTP): image_error is shown to viewers.

One Fetcher per archive pass: it keeps one requests Session per address policy, so a
connection opened under one source's policy is never reused under another's.
"""

import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError
from urllib3.util import connection as urllib3_connection

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
GONE = (403, 404, 410)  # what Discord answers for an expired or deleted attachment
CHUNK = 64 * 1024
USER_AGENT = "mjsite-archive/1.0"


class FetchError(Exception):
    """Why an image could not be copied. `permanent`: trying again cannot help.
    `status`: the HTTP status, when the server answered with an error."""

    def __init__(self, reason, permanent=False, status=None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.status = status

    @property
    def gone(self):
        return self.status in GONE


class Refused(FetchError):
    """A URL or address the policy does not allow: never retried."""

    def __init__(self, reason):
        super().__init__(reason, permanent=True)


@dataclass(frozen=True)
class Policy:
    """Which hosts and addresses one source's images may come from."""

    own_host: str = ""  # the source's host name and port: trusted at own_addresses only
    own_port: int | None = None
    own_addresses: frozenset = frozenset()  # ip_address objects
    allow_private: bool = False  # private, loopback, shared and unique-local ranges
    allowed_networks: tuple = ()  # extra networks, e.g. from the setting
    allowed_names: frozenset = frozenset()  # extra host names, e.g. from the setting

    @classmethod
    def for_source(cls, base_url, allow_private=False, setting="", resolved=None):
        """The policy for one source; `setting` is MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS and
        `resolved` its Source.resolved_addresses (what resolve_origin found), which count
        only while they are of the host and port the source's URL names now."""
        own_host, own_port = host_and_port(base_url)
        own = []
        if own_host and recorded_for(resolved, own_host, own_port):
            own = [canonical(ipaddress.ip_address(a)) for a in resolved["addresses"]]
        networks, names = [], set()
        setting = (setting or "").strip()
        if setting.lower() in ("1", "true", "yes", "on", "all"):
            allow_private = True
        elif setting:
            for item in filter(None, (i.strip() for i in setting.split(","))):
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    names.add(normal_host(item))
        return cls(
            own_host,
            own_port,
            frozenset(own),
            bool(allow_private),
            tuple(networks),
            frozenset(names),
        )

    def is_own(self, host, port):
        """Whether host:port is the source's own (the port, the scheme's default when the
        URL names none: another port of the same host is another service)."""
        return bool(self.own_host) and (normal_host(host), port) == (self.own_host, self.own_port)

    def check_address(self, host, ip, own=False):
        """Raise Refused unless this policy lets us connect to `ip` (an ip_address).
        `own`: host is the source's own host and port, but `ip` is not one of the
        addresses it had at the last sync (a FetchError, tried again later)."""
        ip = canonical(ip)
        if any(ip in net for net in self.allowed_networks):
            return
        # ::1 counts as reserved (::/8) too; it is loopback, handled below.
        if ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):
            raise Refused(f"{host} resolves to {ip}, a multicast or reserved address")
        if ip.is_link_local:
            # Cloud metadata (169.254.169.254) lives here: only an explicit network opens it.
            raise Refused(f"{host} resolves to {ip}, a link-local address")
        if ip.is_global:
            return
        if self.allow_private:
            return
        if own:
            # The source's name answers an address it did not have when last synced: a
            # DNS answer changed since. The next sync notes the new one if the proxy
            # itself is there; until then, nothing is fetched from it.
            raise FetchError(
                f"{host} resolves to {ip}, a private or loopback address the source's host "
                "did not have at its last sync (tried again after the next one)"
            )
        raise Refused(
            f"{host} resolves to {ip}, a private or loopback address "
            "(allowed only for the source's own host and port, or with the source's "
            "'allow private images' or MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS)"
        )

    def addresses(self, host, port):
        """The addresses to connect to for host:port, every one of them checked."""
        if normal_host(host) in self.allowed_names:
            return [host]  # named in MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS: the operator's word
        own = self.is_own(host, port)
        found = []
        for ip in resolve(host, port):
            # One refused address refuses the host: a name that answers both a public
            # and a private address is not one to trust.
            if not (own and canonical(ip) in self.own_addresses):
                self.check_address(host, ip, own=own)
            if str(ip) not in found:
                found.append(str(ip))
        if not found:
            raise FetchError(f"cannot resolve {host}: no address")
        return found


def normal_host(host):
    return (host or "").strip().rstrip(".").lower()


def canonical(ip):
    """An address as it is compared: an IPv4-mapped IPv6 address as its IPv4 one."""
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip


def resolve(host, port):
    """The addresses host resolves to (ip_address objects), or FetchError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    return [ipaddress.ip_address(sockaddr[0].split("%")[0]) for *_, sockaddr in infos]


def host_and_port(url):
    """(host, port) of a URL, the port filled in from the scheme; ("", None) if none."""
    try:
        parts = urlsplit(url or "")
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return "", None
    return normal_host(parts.hostname), port


def resolve_origin(base_url):
    """What a source's host resolves to now, as Source.resolved_addresses keeps it:
    {"host", "port", "addresses"}; None when it does not resolve. The sync notes it after
    each pass that worked, the archive when a source has none yet (tasks/archive/passes.py)."""
    host, port = host_and_port(base_url)
    if not host or port is None:
        return None
    try:
        found = resolve(host, port)
    except FetchError:
        return None
    addresses = []
    for ip in found:
        if str(canonical(ip)) not in addresses:
            addresses.append(str(canonical(ip)))
    return {"host": host, "port": port, "addresses": addresses}


def recorded_for(resolved, host, port):
    """Whether a Source.resolved_addresses is of this host and port."""
    return (
        isinstance(resolved, dict)
        and resolved.get("host") == host
        and resolved.get("port") == port
        and isinstance(resolved.get("addresses"), list)
    )


# The guard inside the connection: urllib3 calls _new_conn for every new socket, including
# the ones a redirect or a dropped keep-alive connection makes, so nothing connects unchecked.


class GuardMixin:
    policy = None  # set on the per-policy subclasses made by guarded_pools()

    def _new_conn(self):
        error = None
        for address in self.policy.addresses(self._dns_host, self.port):
            try:
                return urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
        raise error


def guarded_pools(policy):
    class GuardedHTTPConnection(GuardMixin, HTTPConnection):
        pass

    class GuardedHTTPSConnection(GuardMixin, HTTPSConnection):
        pass

    GuardedHTTPConnection.policy = GuardedHTTPSConnection.policy = policy

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class GuardedAdapter(HTTPAdapter):
    def __init__(self, policy, **kwargs):
        self.policy = policy  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = guarded_pools(self.policy)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # Through a proxy the guard would check the proxy's address, not the image's.
        raise Refused("image downloads never go through an HTTP proxy")


@dataclass
class Fetched:
    url: str  # the last URL, after redirects
    data: bytes
    content_type: str = ""
    redirects: list = field(default_factory=list)


class Fetcher:
    def __init__(self, max_bytes, timeout=15.0, deadline=60.0, pool_size=4):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline = deadline
        self.pool_size = pool_size
        self.sessions = {}
        self.lock = threading.Lock()  # the archive's worker threads share one Fetcher

    def session_for(self, policy):
        with self.lock:
            return self.sessions.get(policy) or self.new_session(policy)

    def new_session(self, policy):
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the environment
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        adapter = GuardedAdapter(policy, pool_connections=8, pool_maxsize=self.pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.sessions[policy] = session
        return session

    def close(self):
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fetch(self, url, policy, max_bytes=None):
        """The bytes at `url`, or FetchError saying why not; `max_bytes` overrides the
        Fetcher's limit (a video's is larger than an image's)."""
        session = self.session_for(policy)
        ends = time.monotonic() + self.deadline
        hops = []
        while True:
            check_url(url)
            if time.monotonic() > ends:
                raise FetchError(f"download took longer than {self.deadline:g} s")
            try:
                response = session.get(
                    url, stream=True, allow_redirects=False, timeout=(self.timeout, self.timeout)
                )
            except FetchError:
                raise
            except requests.Timeout as exc:
                raise FetchError(f"timed out after {self.timeout:g} s: {url_host(url)}") from exc
            except requests.RequestException as exc:
                raise FetchError(f"could not connect to {url_host(url)}: {short(exc)}") from exc
            with response:
                if response.status_code in REDIRECTS and response.headers.get("Location"):
                    if len(hops) >= MAX_REDIRECTS:
                        raise Refused(f"more than {MAX_REDIRECTS} redirects")
                    hops.append(url)
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        f"HTTP {response.status_code} from {url_host(url)}",
                        status=response.status_code,
                    )
                data = self.read_body(response, ends, max_bytes or self.max_bytes)
                return Fetched(url, data, response.headers.get("Content-Type", ""), hops)

    def read_body(self, response, ends, limit):
        declared = response.headers.get("Content-Length")
        if declared is not None:
            try:
                declared = int(declared)
            except ValueError:
                declared = None
        if declared is not None and declared > limit:
            raise Refused(f"too large: {declared:,} bytes announced, the limit is {limit:,}")
        chunks, size = [], 0
        raw = response.raw
        try:
            while True:
                # read1 returns what has arrived (at least one byte, or b"" at the end), so
                # the deadline is checked between small reads even on a slow drip.
                chunk = raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise Refused(f"too large: more than {limit:,} bytes")
                chunks.append(chunk)
                if time.monotonic() > ends:
                    raise FetchError(f"download took longer than {self.deadline:g} s")
        except FetchError:
            raise
        except (ReadTimeoutError, TimeoutError) as exc:
            raise FetchError(f"timed out after {self.timeout:g} s reading the body") from exc
        except (HTTPError, OSError) as exc:  # a cut connection, a bad chunk, a reset
            raise FetchError(f"download broke off: {short(exc)}") from exc
        if declared is not None and size < declared:
            raise FetchError(f"download broke off after {size:,} of {declared:,} bytes")
        return b"".join(chunks)


def check_url(url):
    if not isinstance(url, str) or not url.strip():
        raise Refused("no URL")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise Refused(f"not a valid URL: {short(exc)}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise Refused(f"only http and https URLs are fetched, not {parts.scheme or 'this'}:")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("URLs with credentials are not fetched")


def url_host(url):
    try:
        return urlsplit(url).netloc or url[:80]
    except ValueError:
        return url[:80]


# What a server sent can show up inside an exception's text: a status line that is not
# HTTP (BadStatusLine('SSH-2.0-OpenSSH…')), a chunk size that is not one
# (InvalidChunkLength(got length b'…')), a PNG chunk's name. Messages drop such quotes.
QUOTED_BYTES = re.compile(r"\bb'(?:[^'\\]|\\.)*'" + r'|\bb"(?:[^"\\]|\\.)*"')
STATUS_LINE = re.compile(
    r"\b(BadStatusLine|LineTooLong|UnknownProtocol)\("
    + r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
)
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")


def short(exc):
    """An exception's text for a message: bounded, and without what the server sent."""
    text = str(exc) or exc.__class__.__name__
    text = STATUS_LINE.sub(r"\1(…", QUOTED_BYTES.sub("b'…'", text))
    return text if len(text) <= 300 else text[:297] + "..."


def media_type(value):
    """A Content-Type as a message may quote it: the media type alone, when it is one."""
    kind = (value or "").split(";")[0].strip().lower()
    if not kind:
        return "no content type"
    return kind if MEDIA_TYPE.fullmatch(kind) else "an unusual content type"
