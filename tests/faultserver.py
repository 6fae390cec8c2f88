"""A tiny local HTTP server that answers with whatever a test tells it to.

For the odd and hostile answers the simulator does not give: a 500, a body that
breaks off, a slow answer. Routes map (method, path) to a `Reply`.
"""

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"[]"
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0  # seconds before the headers
    cut_after: int | None = None  # close the connection after this many body bytes
    declared_length: int | None = None  # a Content-Length that may lie


class FaultServer:
    def __init__(self):
        self.routes = {}
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                server.requests.append((self.command, path, dict(self.headers), body))
                reply = server.routes.get((self.command, path), Reply(404, b"", {}))
                if callable(reply):
                    reply = reply(body)
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                declared = reply.declared_length
                self.send_header(
                    "Content-Length", str(len(reply.body) if declared is None else declared)
                )
                self.send_header("Connection", "close")
                self.end_headers()
                data = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            do_GET = do_POST = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
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
