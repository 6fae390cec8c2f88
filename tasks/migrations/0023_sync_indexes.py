# Issue 19: indexes the sync writes (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0022_search_postgresql")]

    operations = []
