"""The one counts type: what a pass did, as named integers.

A room names its counts by subclassing Counts as a dataclass, one `int = 0` field per
count, in the order its summary prints them:

    @dataclass
    class SyncCounts(Counts):
        fetched: int = 0
        created: int = 0

Counts of the same kind add up with `add` (or `+=`), `summary()` (and str) is
"fetched=3 created=1", and a Counts is true when any count is not zero. It lives in
tasks/db, below the rooms that count (ingest, archive), and imports nothing of theirs.
"""

from dataclasses import dataclass, fields


@dataclass
class Counts:
    """Named integers, all zero to begin with; subclasses declare the names."""

    def items(self):
        """(name, count) pairs in the order the fields are declared."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def add(self, other):
        """Add another's counts to these (the same kind of counts); return self."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    __iadd__ = add

    def summary(self):
        return " ".join(f"{name}={n}" for name, n in self.items())

    __str__ = summary

    def __bool__(self):
        return any(n for _, n in self.items())
