"""Threads for tests that race: what a thread raised fails the test, a stuck thread too.

A bare threading.Thread swallows its exception (the thread prints it and dies), so a
test whose rival writer crashed passes as if the rival had done its part. A Racer keeps
its target's return value and exception; join() re-raises the exception in the test and
returns the value, so the test can also check what each thread did.
"""

import threading
import time

from django.db import connection

JOIN_SECONDS = 60  # generous: a thread that needs longer is stuck, not slow


class Racer(threading.Thread):
    """A thread running target(*args, **kwargs) with a database connection of its own,
    closed when it ends."""

    def __init__(self, target, *args, name=None, **kwargs):
        super().__init__(name=name, daemon=True)
        self.call = (target, args, kwargs)
        self.result = None
        self.error = None

    def run(self):
        target, args, kwargs = self.call
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (re-raised by join)
            self.error = exc
        finally:
            connection.close()

    def join(self, timeout=JOIN_SECONDS):
        """Wait for the thread; return what its target returned, or raise what it raised."""
        super().join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread {self.name} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


def join_all(threads, timeout=JOIN_SECONDS):
    """Join every thread (none is left running), then raise the first error among them;
    return their results in order."""
    outcomes = []
    for thread in threads:
        try:
            outcomes.append((thread.join(timeout), None))
        except BaseException as exc:  # noqa: BLE001 (raised below, after the others)
            outcomes.append((None, exc))
    for _, error in outcomes:
        if error is not None:
            raise error
    return [result for result, _ in outcomes]


def at_once(target, times=2):
    """Call target() in `times` Racers released together by a barrier; return their results
    (what one of them raised is raised here, after every thread has ended)."""
    start = threading.Barrier(times)

    def run():
        start.wait(JOIN_SECONDS)
        return target()

    racers = [Racer(run, name=f"at-once-{n}") for n in range(times)]
    for racer in racers:
        racer.start()
    return join_all(racers)


class SleepWatch:
    """Stands in for a module's `time` (monkeypatch.setattr(module, "time", watch)): every
    sleep is noted, with the thread that took it, and `began` is set at the first; the
    sleep itself is real. So a test learns that a pass went to wait (for the lease:
    tasks/ingest/sync.py, claim_lease) without guessing how long that takes."""

    def __init__(self):
        self.began = threading.Event()
        self.sleeps = []  # (thread name, seconds)

    def sleep(self, seconds):
        self.sleeps.append((threading.current_thread().name, seconds))
        self.began.set()
        time.sleep(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


def reached(condition, *threads, timeout=JOIN_SECONDS):
    """Wait until condition() holds; give up early when one of `threads` has ended (it
    can no longer bring the condition about: joining it says why). Return condition()."""
    deadline = time.monotonic() + timeout
    while not condition():
        if any(not thread.is_alive() for thread in threads) or time.monotonic() > deadline:
            return condition()
        time.sleep(0.005)
    return True
