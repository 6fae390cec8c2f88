"""The HTTP side: routes /mj/... like the chosen flavor, streams big lists, serves images."""

import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import images, videos
from .flavors import JSON, TEXT, dumps
from .links import GONE
from .payloads import splice_buttons

log = logging.getLogger("tasks.simulator")

FETCH = re.compile(r"^/mj/task/([^/]+)/fetch$")
BATCH = 500  # records per chunk written to the socket
MAX_BODY = 10 * 1024 * 1024


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim):
        self.sim = sim
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def track(self, conn, alive):
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def close_connections(self):
        # keep-alive connections would otherwise outlive stop() in their handler threads
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mj-simulator/1.0"
    timeout = 60  # idle keep-alive connections are closed after this
    # Headers and body go out as two writes: with Nagle's algorithm the body waited for
    # the client's delayed ACK, about 40 ms per answer.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # --- routing -------------------------------------------------------------------------

    def send_response(self, code, message=None):
        self._responded = True
        super().send_response(code, message)

    def _dispatch(self, method):
        sim = self.server.sim
        sim.requests_log.append((method, self.path, dict(self.headers.items())))
        self._responded = False
        body = self._read_body()
        if body is None:
            return
        try:
            self._answer(method, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # a bug here must not leave the client waiting (nor a half-sent list looking whole)
            log.exception("simulator failed on %s %s", method, self.path)
            self.close_connection = True
            if not self._responded:
                self._send(500, TEXT, b"simulator error")

    def _answer(self, method, body):
        sim = self.server.sim
        path = urlsplit(self.path).path
        if path.startswith("/attachments/") and method == "GET":
            return self._image()
        flavor = sim.flavor
        if flavor.serves_admin_list and method == "GET" and path in ("/api/mj", "/api/mj/"):
            return self._admin_list(path)
        if path.startswith("/_sim/accounts/"):  # the tests' controls (accounts.py)
            return self._send(*sim.accounts.control(method, path, body))
        route = self._route(method, path, flavor)
        authorized = not sim.secret or flavor.authorized(self.headers, sim.secret)
        if path.startswith("/mj/admin/"):  # trueai's admin routes check the admin token
            authorized = True
        if flavor.auth_before_routing and not authorized and path.startswith("/mj/"):
            return self._send(*flavor.unauthorized())
        account_answer = sim.accounts.answer(method, path, self.headers, body)
        if account_answer is not None:
            return self._send(*account_answer)
        if route is None:
            return self._send(*flavor.not_routed(path, sim.clock.now_ms()))
        if not authorized:
            return self._send(*flavor.unauthorized())
        name, arg = route
        if name == "list":
            return self._send_list(sim.list_items())
        if name == "queue":
            return self._send_list(sim.queue_items())
        if name == "by_ids":
            return self._by_ids(body, path)
        record = sim.record(arg) if flavor.visible(arg) else None
        if record is None:
            return self._send(*flavor.fetch_not_found())
        return self._send(200, JSON, dumps(record).encode())

    def _route(self, method, path, flavor):
        if method == "GET" and path == "/mj/task/list" and flavor.has_list:
            return "list", None
        if method == "GET" and path == "/mj/task/queue" and flavor.has_queue:
            return "queue", None
        if method == "POST" and path == "/mj/task/list-by-condition":
            return "by_ids", None
        if method == "POST" and path == "/mj/task/list-by-ids" and flavor.has_list_by_ids:
            return "by_ids", None
        m = FETCH.match(path)
        if method == "GET" and m:
            return "fetch", m.group(1)
        return None

    def _by_ids(self, body, path):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            err = {"status": 400, "error": "Bad Request", "path": path}
            return self._send(400, JSON, dumps(err).encode())
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(ids, list):
            ids = []
        visible = self.server.sim.flavor.visible
        self._send_list(self.server.sim.items_by_ids(str(i) for i in ids if visible(str(i))))

    def _admin_list(self, path):
        if path == "/api/mj":
            # gin's trailing-slash redirect
            query = urlsplit(self.path).query
            self.send_response(301)
            self.send_header("Location", "/api/mj/" + (f"?{query}" if query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        sim = self.server.sim
        return self._send(*sim.relay_table.answer(sim, self.headers, self.path))

    def _image(self):
        sim = self.server.sim
        checked = sim.signer.check(self.path, sim.clock.now_ms())
        if checked is None:
            return self._send(404, TEXT, GONE.encode())
        path, query = checked
        parts = path.split("/")
        name = parts[-1]
        step = 6
        try:
            step = min(6, int(parts[-2]) & 0xFFF)
        except (ValueError, IndexError):
            pass
        if name.endswith(".mp4"):
            answer = videos.answer(videos.video_bytes(name), self.headers.get("Range"))
            status, headers, body = answer
            return self._send(status, None, body, headers)
        width = _int_param(query, "width")
        height = _int_param(query, "height")
        data = images.image_bytes(name, step, width, height)
        self._send(200, images.content_type(name), data)

    # --- responses -----------------------------------------------------------------------

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            self._send(413, TEXT, b"Request body too large")
            return None
        return self.rfile.read(n)

    def _send(self, status, content_type, body, headers=None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_list(self, items):
        # Chunked: a 100,000-task list (~200 MB) is never held in memory as one body.
        sim = self.server.sim
        now = sim.clock.now_ms()
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        write = self.wfile.write
        opening = "["
        for start in range(0, len(items), BATCH):
            batch = [sim.render(item, now, raw=True) for item in items[start : start + BATCH]]
            text = (opening if start == 0 else ",") + dumps(batch)[1:-1]
            piece = splice_buttons(text.encode())
            opening = ""
            write(b"%x\r\n%s\r\n" % (len(piece), piece))
        tail = (opening + "]").encode()
        write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))


def _int_param(query, name):
    try:
        value = int(query[name][0])
    except (KeyError, ValueError, IndexError):
        return None
    return value if value > 0 else None
