# Issue 19: indexes the sync writes (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0021_search_speed")]

    operations = []
