"""Lookups that write their constants into the SQL, for queries a partial index serves.

SQLite uses a partial index only when the query's WHERE repeats the index's condition
with the same literal values: `status IN (?, ?, ?)` with bound parameters does not
match `WHERE NOT (status IN ('SUCCESS', 'FAILURE', 'CANCEL'))`, so the light pass and
the archiver scanned every row. These lookups take constants from the code only
(never user input) and refuse anything but plain words.
"""

import re

from django.db import models
from django.db.models import Lookup

PLAIN_WORD = re.compile(r"[A-Za-z0-9_]+")


def literal(value):
    if not isinstance(value, str) or not PLAIN_WORD.fullmatch(value):
        raise ValueError(f"not a plain constant: {value!r}")
    return f"'{value}'"


@models.CharField.register_lookup
class ConstantExact(Lookup):
    """field__const="pending": `field = 'pending'`."""

    lookup_name = "const"
    prepare_rhs = False

    def constant_sql(self):
        return f"= {literal(self.rhs)}"

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} {self.constant_sql()}", params


@models.CharField.register_lookup
class ConstantIn(ConstantExact):
    """field__const_in=("A", "B"): `field IN ('A', 'B')`, in the order given."""

    lookup_name = "const_in"

    def constant_sql(self):
        return f"IN ({', '.join(literal(v) for v in self.rhs)})"
