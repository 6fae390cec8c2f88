"""Push like novicezk's NotifyServiceImpl: POST the whole task JSON to the notify-hook when a
task's status:progress changes, from a small pool (so posts may arrive out of order), never
sending a change older than the last one sent for that task, never retrying."""

import logging
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .flavors import dumps
from .lifecycle import FINISHED, rank

log = logging.getLogger("tasks.simulator")


class Notifier:
    def __init__(self, sim, url, interval=0.5, workers=4, timeout=10):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"notify-hook must be an http(s) URL, not {url!r}")
        self.sim = sim
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.log = []  # (task_id, "status:progress", http status or error text), as answered
        self._last = {}  # task id -> (rank, "status:progress") last sent
        self._watch = set()  # ids whose status may still change
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mj-sim-notify")
        self._thread = None

    def start(self, running_ids):
        # Tasks already running are remembered as they are now: only later changes are sent.
        now = self.sim.clock.now_ms()
        for task_id in running_ids:
            record = self.sim.record(task_id, now=now)
            if record is not None:
                self._last[task_id] = _key(record)
                self._watch.add(task_id)
        self._thread = threading.Thread(target=self._loop, name="mj-sim-notifier", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def watch(self, task_id):
        with self._lock:
            self._watch.add(task_id)

    def reset(self):
        # a proxy restart forgets what it sent
        with self._lock:
            self._watch.clear()
            self._last.clear()

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # keep pushing whatever one bad record does
                log.exception("notify-hook check failed")

    def check(self):
        now = self.sim.clock.now_ms()
        with self._lock:
            ids = list(self._watch)
        for task_id in ids:
            record = self.sim.record(task_id, now=now)
            if record is None:
                with self._lock:
                    self._watch.discard(task_id)
                continue
            key = _key(record)
            with self._lock:
                last = self._last.get(task_id)
                if not self.sim.is_planned(task_id) or record.get("status") in FINISHED:
                    self._watch.discard(task_id)  # static records and finished tasks are done
                if last is not None and last[1] == key[1]:
                    continue
                if last is not None and key[0] < last[0]:
                    log.info("notify-hook: dropped stale %s for %s", key[1], task_id)
                    continue
                self._last[task_id] = key
            self._pool.submit(self._post, task_id, key[1], dumps(record).encode())

    def _post(self, task_id, key, body):
        # the scheme was checked in __init__: only http(s) URLs get here
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                result = response.status
        except urllib.error.HTTPError as e:
            result = e.code
        except (OSError, ValueError) as e:
            result = f"{type(e).__name__}: {e}"
        self.log.append((task_id, key, result))
        if not (isinstance(result, int) and 200 <= result < 300):
            log.warning(
                "notify-hook %s for task %s (%s) failed: %s", self.url, task_id, key, result
            )


def _key(record):
    # keyed like novicezk's cache: "status:progress", with Java's spelling of null
    status, progress = record.get("status"), record.get("progress")
    shown = "null" if progress is None else progress
    return rank(status, progress), f"{status}:{shown}"
