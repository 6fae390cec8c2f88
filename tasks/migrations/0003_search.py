# The text search index (see tasks/db/search.py): an FTS5 table kept by triggers on
# SQLite, a generated tsvector column with a GIN index on PostgreSQL.

from django.db import migrations


def create(apps, schema_editor):
    from tasks.db import search

    search.create_schema(schema_editor)


def drop(apps, schema_editor):
    from tasks.db import search

    search.drop_schema(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0002_archive_and_hooks"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
