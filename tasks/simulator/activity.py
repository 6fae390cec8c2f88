"""Keeps a demo alive: submits a random task every `every` seconds of the simulator's clock
(a ManualClock moved by an hour catches up with at most MAX_CATCH_UP tasks)."""

import logging
import threading

log = logging.getLogger("tasks.simulator")
MAX_CATCH_UP = 100


class Activity:
    def __init__(self, sim, every):
        self.sim = sim
        self.every_ms = max(1, int(every * 1000))
        self.poll = min(float(every), 0.25)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mj-sim-activity", daemon=True)

    def start(self):
        self._next = self.sim.clock.now_ms() + self.every_ms
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self):
        while not self._stop.wait(self.poll):
            try:
                self.tick()
            except Exception:
                log.exception("submitting a random task failed")

    def tick(self):
        now = self.sim.clock.now_ms()
        done = 0
        while self._next <= now and done < MAX_CATCH_UP:
            self.sim.submit_random(self._next)
            self._next += self.every_ms
            done += 1
        if self._next <= now:
            self._next = now + self.every_ms
