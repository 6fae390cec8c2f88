"""Clocks: the simulator reads time only through one of these, so tests can move it by hand."""

import threading
import time


def _real_ms():
    return int(time.time() * 1000)


class RealClock:
    def now_ms(self):
        return _real_ms()


class ManualClock:
    # Starts at the real time unless told otherwise, then moves only when advanced.
    def __init__(self, start_ms=None):
        self._ms = _real_ms() if start_ms is None else int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self):
        return self._ms

    def advance(self, seconds):
        with self._lock:
            self._ms += round(seconds * 1000)
            return self._ms

    def set_ms(self, ms):
        with self._lock:
            self._ms = int(ms)
