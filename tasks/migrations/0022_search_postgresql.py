# Issue 19: search structures on PostgreSQL (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0021_search_sqlite")]

    operations = []
