"""The simulator's in-memory task store: plans and put() records by id, kept in list order.

Like novicezk's in-memory store, it is a dict; the newest-first order is cached and rebuilt
only after a change, so serving the list does not sort 100,000 tasks every time.
"""

import threading

from .lifecycle import Plan


def sort_key(item):
    if isinstance(item, Plan):
        return (item.sub, item.id)
    sub = item.get("submitTime")
    return (sub if isinstance(sub, int) else 0, str(item.get("id")))


class Store:
    def __init__(self):
        self._items = {}
        self._ordered = None
        self._lock = threading.Lock()
        self._counter = 0

    def new_id(self, ms):
        # 13-digit submit time + 3 digits, unique even within one millisecond
        with self._lock:
            for _ in range(1000):
                self._counter = (self._counter + 1) % 1000
                task_id = f"{ms:013d}{self._counter:03d}"
                if task_id not in self._items:
                    return task_id
        raise RuntimeError(f"no free task id left in millisecond {ms}")

    def add(self, task_id, item):
        with self._lock:
            self._items[task_id] = item
            self._ordered = None

    def add_many(self, pairs):
        with self._lock:
            self._items.update(pairs)
            self._ordered = None

    def get(self, task_id):
        return self._items.get(task_id)

    def remove(self, task_id):
        with self._lock:
            if self._items.pop(task_id, None) is not None:
                self._ordered = None

    def clear(self):
        with self._lock:
            self._items.clear()
            self._ordered = None

    def newest_first(self):
        """A snapshot list of items, newest first; callers must not modify it."""
        with self._lock:
            if self._ordered is None:
                self._ordered = sorted(self._items.values(), key=sort_key, reverse=True)
            return self._ordered

    def __len__(self):
        return len(self._items)
