# Issue 19: the SQLite search index keyed by submit hour, with prefix indexes (see
# tasks/db/search.py). Rebuilt from the text the index already holds; PostgreSQL: nothing.

from django.db import migrations

# The layout before this migration, to go back to.
OLD_TABLE = (
    "CREATE VIRTUAL TABLE {name} USING fts5(body, tokenize = 'unicode61 remove_diacritics 0')"
)
OLD_TRIGGERS = [
    """CREATE TRIGGER tasks_task_fts_insert AFTER INSERT ON tasks_task BEGIN
        INSERT INTO tasks_task_fts(rowid, body) VALUES (new.id,
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    """CREATE TRIGGER tasks_task_fts_update
    AFTER UPDATE OF prompt, prompt_en, description, fail_reason ON tasks_task
    WHEN old.prompt IS NOT new.prompt OR old.prompt_en IS NOT new.prompt_en
        OR old.description IS NOT new.description OR old.fail_reason IS NOT new.fail_reason
    BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = old.id;
        INSERT INTO tasks_task_fts(rowid, body) VALUES (new.id,
            tasks_search_text(new.prompt, new.prompt_en, new.description, new.fail_reason));
    END""",
    """CREATE TRIGGER tasks_task_fts_delete AFTER DELETE ON tasks_task BEGIN
        DELETE FROM tasks_task_fts WHERE rowid = old.id;
    END""",
]


def rekey(apps, schema_editor):
    from tasks.db import search

    search.rekey_sqlite_table(schema_editor)


def unkey(apps, schema_editor):
    from tasks.db import search

    connection = schema_editor.connection
    if connection.vendor != "sqlite" or not search.is_keyed_by_time(connection):
        return
    search.drop_triggers(schema_editor)
    schema_editor.execute(f"DROP TABLE IF EXISTS {search.VOCABULARY}")
    schema_editor.execute(OLD_TABLE.format(name="tasks_task_fts_old"))
    schema_editor.execute(
        "INSERT INTO tasks_task_fts_old(rowid, body) SELECT rowid & "
        f"{search.ID_MASK}, body FROM tasks_task_fts ORDER BY 1"
    )
    schema_editor.execute("DROP TABLE tasks_task_fts")
    schema_editor.execute("ALTER TABLE tasks_task_fts_old RENAME TO tasks_task_fts")
    for sql in OLD_TRIGGERS:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("tasks", "0020_usage_cells")]

    operations = [migrations.RunPython(rekey, unkey, elidable=False)]
