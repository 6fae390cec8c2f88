"""The rooms of tasks/: stored schedules follow the modules that moved, and every
function a schedule names can be imported."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.models import Schedule

from tasks.bootstrap import SCHEDULES, ensure_schedules

BEFORE = [("tasks", "0010_resolved_addresses_error_detail")]
AFTER = [("tasks", "0011_schedules_in_new_modules")]


def migrate(targets=None):
    """Migrate to `targets`, or (None) to the latest migration of every app."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def importable(dotted):
    module, _, name = dotted.rpartition(".")
    return callable(getattr(importlib.import_module(module), name, None))


@pytest.fixture
def back_to_latest():
    # The tests after this one need every later migration's tables and columns.
    yield
    migrate()


@pytest.mark.django_db(transaction=True)
def test_stored_schedules_are_pointed_at_the_moved_modules(back_to_latest):
    migrate(BEFORE)
    old = {
        "mjsite: light sync": "tasks.sync.light_pass",
        "mjsite: image archive": "tasks.archive.archive_pass",
        "mjsite: overview roll-up": "tasks.rollup.scheduled_refresh",
        "made by hand": "tasks.sync.sync_source_by_id",
        "someone else's": "reports.weekly.send",
    }
    for name, func in old.items():
        Schedule.objects.create(name=name, func=func, schedule_type=Schedule.MINUTES, minutes=5)

    migrate(AFTER)

    funcs = dict(Schedule.objects.filter(name__in=old).values_list("name", "func"))
    assert funcs == {
        "mjsite: light sync": "tasks.ingest.sync.light_pass",
        "mjsite: image archive": "tasks.archive.passes.archive_pass",
        "mjsite: overview roll-up": "tasks.reports.rollup.scheduled_refresh",
        "made by hand": "tasks.ingest.sync.sync_source_by_id",
        "someone else's": "reports.weekly.send",
    }
    assert all(importable(f) for n, f in funcs.items() if n != "someone else's")


@pytest.mark.django_db
def test_every_schedule_mjsite_makes_names_a_function_that_exists():
    ensure_schedules()
    for func, _every in SCHEDULES.values():
        assert importable(func), func
    assert Schedule.objects.filter(name__in=SCHEDULES).count() == len(SCHEDULES)
