# Issue 19: search structures on SQLite (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0020_usage_cells")]

    operations = []
