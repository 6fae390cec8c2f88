# The derived columns of the tasks stored before 0012 added them, then the indexes of the
# list's caller and version filters (built after the backfill: cheaper than keeping them
# up to date through a million updates).

from django.db import migrations, models

from tasks.ingest.backfill import backfill


def derive_stored_tasks(apps, schema_editor):
    done, last_pk = backfill(apps.get_model("tasks", "Task"))
    if done:
        print(f"\n  derived the columns of {done:,} stored tasks (up to pk {last_pk})")


class Migration(migrations.Migration):
    # One transaction per batch of the backfill, not one over every task: PostgreSQL
    # would hold a million rows' changes and locks until the end.
    atomic = False

    dependencies = [
        ("tasks", "0012_derived_columns_media_admin_credentials"),
    ]

    operations = [
        migrations.RunPython(derive_stored_tasks, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["caller", "-submitted", "-id"], name="task_caller_idx"),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["version", "-submitted", "-id"], name="task_version_idx"),
        ),
    ]
