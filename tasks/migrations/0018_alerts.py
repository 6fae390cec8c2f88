# Placeholder, filled by the work it is named after.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0017_usage"),
    ]

    operations = []
