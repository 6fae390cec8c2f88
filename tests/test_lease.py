"""The source's lease (one pass per source at a time) over time: a full pass that meets
a light pass waits for it, and a pass whose list downloads slowly keeps its lease."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from tasks.ingest import sync
from tasks.models import Source, SyncRun, Task
from tests.threads import Racer, SleepWatch, reached


def hold_lease(source, seconds):
    """Another pass (the same minute's light pass) holds the lease for `seconds`."""
    until = timezone.now() + timedelta(seconds=seconds)
    Source.objects.filter(pk=source.pk).update(lease_owner="light-pass", lease_until=until)


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_full_pass_waits_for_the_light_pass_of_the_same_minute(
    start_sim, make_source, settings, monkeypatch
):
    # The light pass holds a lease that cannot run out during the test: the full pass
    # can only get it when the light pass gives it back.
    settings.MJ_SYNC_LEASE_SECONDS = 300
    source = make_source(start_sim(tasks=20))
    assert sync.claim_lease(source, "light-pass")
    naps = SleepWatch()
    monkeypatch.setattr(sync, "time", naps)
    full = Racer(sync.sync_source_by_id, source.pk, full=True, name="full-pass")

    full.start()
    try:
        # The full pass has found the lease taken and sleeps before its next try.
        waited = reached(naps.began.is_set, full)
        runs_while_waiting = SyncRun.objects.filter(source=source).count()
    finally:
        released = timezone.now()  # the light pass ends
        sync.release_lease(source, "light-pass")
        full.join()

    assert waited, "the full pass never waited for the lease"
    assert runs_while_waiting == 0  # neither started nor skipped while it waited
    run = SyncRun.objects.get(source=source)
    assert (run.kind, run.outcome) == ("full", "ok"), run.error
    assert run.started >= released  # it ran once the light pass had let go, not before
    assert Task.objects.filter(source=source).count() == 20
    # And it let go itself.
    assert Source.objects.values_list("lease_owner", flat=True).get(pk=source.pk) == ""


@pytest.mark.django_db
def test_a_scheduled_light_pass_skips_while_another_pass_runs(start_sim, make_source, monkeypatch):
    sim = start_sim(tasks=20)
    source = make_source(sim)
    hold_lease(source, seconds=60)
    held = Source.objects.values_list("lease_owner", "lease_until").get(pk=source.pk)
    naps = SleepWatch()
    monkeypatch.setattr(sync, "time", naps)

    sync.sync_source_by_id(source.pk, full=False)

    run = SyncRun.objects.get(source=source)
    assert (run.kind, run.outcome) == ("light", "skipped")
    assert naps.sleeps == []  # it did not wait for the lease: it gave up at once
    assert run.worker and run.ended == run.started
    # The other pass's lease is untouched, and the skipped pass asked the proxy nothing.
    assert Source.objects.values_list("lease_owner", "lease_until").get(pk=source.pk) == held
    assert sim.requests_log == []
    assert not Task.objects.filter(source=source).exists()


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
    tries, taken = [], []  # when the rival asked for the lease; when it held it
    took_once, done = threading.Event(), threading.Event()

    def rival():
        while not done.is_set():
            asked = timezone.now()
            if sync.claim_lease(source, "rival"):
                taken.append(timezone.now())
                sync.release_lease(source, "rival")
                took_once.set()
            tries.append(asked)
            time.sleep(0.1)

    thread = Racer(rival, name="rival")
    thread.start()
    try:
        # While no pass runs, the rival gets the lease and gives it back.
        assert reached(took_once.is_set, thread), "the rival never got the free lease"
        run = sync.sync_source(source, full=True, wait_seconds=5)
    finally:
        done.set()
        thread.join()  # raises what the rival raised

    assert run.outcome == "ok", run.error
    assert run.created == 30
    # The rival kept asking after the pass's first lease would have run out...
    term = timedelta(seconds=settings.MJ_SYNC_LEASE_SECONDS)
    late = [t for t in tries if run.started + term < t < run.ended]
    assert late, "the rival never asked for the lease once its first term was over"
    # ...and never got it while the pass ran.
    during = [t for t in taken if run.started <= t <= run.ended]
    assert not during, f"another pass took the lease {len(during)} times mid-download"
