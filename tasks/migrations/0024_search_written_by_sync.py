# Issue 19: the SQLite search index's insert trigger skips the rows whose writer indexes
# them itself (the sync's bulk insert: tasks/db/search.py, index_new_tasks). PostgreSQL:
# nothing.

from django.db import migrations

OLD_INSERT_TRIGGER = """CREATE TRIGGER tasks_task_fts_insert AFTER INSERT ON tasks_task BEGIN
        INSERT INTO tasks_task_fts(rowid, body) VALUES (tasks_search_key(new.submitted, new.id),
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END"""


def replace_insert_trigger(schema_editor, sql):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    from tasks.db import search

    connection.ensure_connection()
    search.register_function(connection.connection)
    schema_editor.execute("DROP TRIGGER IF EXISTS tasks_task_fts_insert")
    schema_editor.execute(sql)


def forwards(apps, schema_editor):
    from tasks.db import search

    replace_insert_trigger(schema_editor, search.SQLITE_TRIGGERS[0])


def backwards(apps, schema_editor):
    replace_insert_trigger(schema_editor, OLD_INSERT_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("tasks", "0023_sync_indexes")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
