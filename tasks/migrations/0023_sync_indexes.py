# Issue 19: indexes the sync writes. The foreign keys' own indexes on Task.source and
# TaskEvent.task repeat the first column of task_source_task_id_uniq and
# taskevent_task_seen_idx, which serve every query by source or by task: dropped, one
# index less to write for every task and event a sync stores. Dropped by name rather
# than by AlterField, which on SQLite would copy the whole table.

import django.db.models.deletion
from django.db import migrations, models

DROPPED = {
    "tasks_task_source_id_b71c4722": ("tasks_task", "source_id"),
    "tasks_taskevent_task_id_bfe419b4": ("tasks_taskevent", "task_id"),
}


class Migration(migrations.Migration):
    dependencies = [("tasks", "0022_search_postgresql")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for name, (table, column) in DROPPED.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="task",
                    name="source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="tasks",
                        to="tasks.source",
                    ),
                ),
                migrations.AlterField(
                    model_name="taskevent",
                    name="task",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="tasks.task",
                    ),
                ),
            ],
        ),
    ]
