# Issue 16: the per-account roll-up behind /discord-accounts/ (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0018_alerts")]

    operations = []
