"""The source's lease (one pass per source at a time) over time: a full pass that meets
a light pass waits for it, and a pass whose list downloads slowly keeps its lease."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from tasks.ingest import sync
from tasks.models import Source, SyncRun, Task


def hold_lease(source, seconds):
    """Another pass (the same minute's light pass) holds the lease for `seconds`."""
    until = timezone.now() + timedelta(seconds=seconds)
    Source.objects.filter(pk=source.pk).update(lease_owner="light-pass", lease_until=until)


@pytest.mark.django_db
def test_a_scheduled_full_pass_waits_for_the_light_pass_of_the_same_minute(start_sim, make_source):
    source = make_source(start_sim(tasks=20))
    hold_lease(source, seconds=2)

    sync.sync_source_by_id(source.pk, full=True)

    run = SyncRun.objects.get(source=source)
    assert (run.kind, run.outcome) == ("full", "ok"), run.error
    assert Task.objects.filter(source=source).count() == 20


@pytest.mark.django_db
def test_a_scheduled_light_pass_skips_while_another_pass_runs(start_sim, make_source):
    source = make_source(start_sim(tasks=20))
    hold_lease(source, seconds=60)

    started = time.monotonic()
    sync.sync_source_by_id(source.pk, full=False)

    run = SyncRun.objects.get(source=source)
    assert (run.kind, run.outcome) == ("light", "skipped")
    assert time.monotonic() - started < 5
    assert run.worker and run.ended == run.started


def record(n):
    return {"id": f"17000000000{n:05d}", "action": "IMAGINE", "status": "SUCCESS", "n": n}


class DripServer(ThreadingHTTPServer):
    """A proxy whose /mj/task/list arrives one record every `pause` seconds."""

    def __init__(self, count, pause):
        self.count, self.pause = count, pause

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/mj/task/list":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for n in range(count):
                    piece = ("[" if n == 0 else ",") + json.dumps(record(n))
                    piece += "]" if n == count - 1 else ""
                    data = piece.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(pause)
                self.wfile.write(b"0\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def drip_server():
    server = DripServer(count=30, pause=0.1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.django_db(transaction=True)
def test_a_pass_keeps_its_lease_while_a_slow_list_downloads(drip_server, settings):
    # The list takes 3 s; the lease lasts 1 s. Another pass keeps trying to take over.
    settings.MJ_SYNC_LEASE_SECONDS = 1
    source = Source.objects.create(name="slow", base_url=drip_server.url, kind="novicezk")
    taken, done = [], threading.Event()

    def rival():
        try:
            while not done.is_set():
                if sync.claim_lease(source, "rival"):
                    taken.append(timezone.now())
                    sync.release_lease(source, "rival")
                time.sleep(0.1)
        finally:
            connection.close()

    thread = threading.Thread(target=rival)
    thread.start()
    try:
        time.sleep(0.2)  # the rival's first tries find the lease free: they give it back
        taken.clear()
        run = sync.sync_source(source, full=True, wait_seconds=5)
    finally:
        done.set()
        thread.join()

    assert run.outcome == "ok", run.error
    assert run.created == 30
    during = [t for t in taken if run.started <= t <= run.ended]
    assert not during, f"another pass took the lease {len(during)} times mid-download"
