"""The modules of `tasks` moved into rooms (ingest, archive, db, web, api, reports):
every stored schedule that names a function by its old dotted path is pointed at the new
one, the ones mjsite makes (post_migrate rewrites those too) and any made by hand."""

from django.db import migrations

MOVED = {
    "tasks.sync.": "tasks.ingest.sync.",
    "tasks.hooks.": "tasks.ingest.hooks.",
    "tasks.archive.": "tasks.archive.passes.",
    "tasks.rollup.": "tasks.reports.rollup.",
    "tasks.metrics.": "tasks.reports.metrics.",
}


def rename(apps, schema_editor, moves):
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in Schedule.objects.all():
        for old, new in moves.items():
            if schedule.func.startswith(old) and not schedule.func.startswith(new):
                Schedule.objects.filter(pk=schedule.pk).update(func=new + schedule.func[len(old) :])


def forwards(apps, schema_editor):
    rename(apps, schema_editor, MOVED)


def backwards(apps, schema_editor):
    rename(apps, schema_editor, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0010_resolved_addresses_error_detail"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
