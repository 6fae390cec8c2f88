# Issue 17: the usage roll-ups per grouping (placeholder)

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tasks", "0019_account_rollup")]

    operations = []
