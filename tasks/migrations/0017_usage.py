# Placeholder, filled by the work it is named after.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0016_media_changes"),
    ]

    operations = []
