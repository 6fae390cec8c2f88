# Issue 19: PostgreSQL's search_doc, a generated column until now, becomes a plain column
# that the sync's COPY fills for the texts it can (tasks/db/search.py, postgres_vector) and
# triggers fill for every other row and writer, as the generated column did. DROP
# EXPRESSION keeps the stored values and the indexes (no rewrite). SQLite: nothing.

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tasks.db import search

    schema_editor.execute("ALTER TABLE tasks_task ALTER COLUMN search_doc DROP EXPRESSION")
    schema_editor.execute(search.POSTGRES_TRIGGER_FUNCTION)
    for sql in search.POSTGRES_TRIGGERS:
        schema_editor.execute(sql)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tasks.db import search

    for name in ("insert", "update"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS tasks_task_search_doc_{name} ON tasks_task")
    schema_editor.execute("DROP FUNCTION IF EXISTS tasks_task_search_doc()")
    # Dropping the column drops both its indexes; made again as 0003 and 0022 made them.
    schema_editor.execute("ALTER TABLE tasks_task DROP COLUMN search_doc")
    schema_editor.execute(search.POSTGRES_COLUMN)
    schema_editor.execute(search.POSTGRES_INDEX)
    schema_editor.execute(
        "CREATE INDEX task_search_recent_idx ON tasks_task (submitted DESC, id DESC)"
        " INCLUDE (search_doc)"
    )


class Migration(migrations.Migration):
    dependencies = [("tasks", "0024_search_written_by_sync")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
