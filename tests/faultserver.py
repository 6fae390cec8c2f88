"""A tiny local HTTP server that answers with whatever a test tells it to.

For the odd and hostile answers the simulator does not give: a 500, a body that
breaks off, a slow answer. Routes map (method, path) to a `Reply`. With an
`upstream` (a simulator's URL), every request without a route is passed through
to it, so a test can break one endpoint of an otherwise healthy proxy.
"""

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that describe one hop, not the answer: never passed through.
HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"[]"
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0  # seconds before the headers
    cut_after: int | None = None  # close the connection after this many body bytes
    declared_length: int | None = None  # a Content-Length that may lie
    # Headers sent, then the body stalls after this many bytes (for `stall` seconds,
    # or until the server stops).
    stall_after: int | None = None
    stall: float = 30
    reset: bool = False  # end with a TCP reset instead of a clean close (after cut_after)
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    chunk_size: int = 64 * 1024
    raw: bytes | None = None  # these bytes verbatim as the whole answer, status line and all


class FaultServer:
    def __init__(self, upstream=None):
        self.routes = {}
        self.requests = []
        self.upstream = upstream
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def finish(self):
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass  # the test reset or closed the socket on purpose

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                server.requests.append((self.command, path, dict(self.headers), body))
                reply = server.routes.get((self.command, path))
                if reply is None and server.upstream:
                    reply = server.pass_through(self.command, self.path, self.headers, body)
                if reply is None:
                    reply = Reply(404, b"", {})
                if callable(reply):
                    reply = reply(body)
                try:
                    self.answer(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def answer(self, reply):
                if reply.delay:
                    server.stopping.wait(reply.delay)
                if reply.raw is not None:
                    self.wfile.write(reply.raw)
                    self.wfile.flush()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    declared = reply.declared_length
                    self.send_header(
                        "Content-Length", str(len(reply.body) if declared is None else declared)
                    )
                self.send_header("Connection", "close")
                self.end_headers()
                data = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
                if reply.stall_after is not None:
                    self.send_body(data[: reply.stall_after], reply)
                    server.stopping.wait(reply.stall)
                    data = data[reply.stall_after :]
                self.send_body(data, reply)
                if reply.chunked and reply.cut_after is None:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                if reply.reset:
                    # SO_LINGER 0: close() sends RST, the client sees "connection reset".
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()

            def send_body(self, data, reply):
                if not reply.chunked:
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                for start in range(0, len(data), reply.chunk_size):
                    piece = data[start : start + reply.chunk_size]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()

            do_GET = do_POST = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()  # stalled answers end now
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, method, path, reply):
        self.routes[(method, path)] = reply

    def everywhere(self, reply):
        for method, path in [
            ("GET", "/mj/task/list"),
            ("GET", "/mj/task/queue"),
            ("POST", "/mj/task/list-by-condition"),
        ]:
            self.route(method, path, reply)

    def requests_to(self, path, method=None):
        return [r for r in self.requests if r[1] == path and (method is None or r[0] == method)]

    def pass_through(self, method, path, headers, body):
        """The upstream's answer to this request, as a Reply."""
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            data = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_HEADERS}
            return Reply(response.status, data, kept)
        finally:
            conn.close()


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll until predicate() is true; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
