# Issue 17: the usage roll-ups per grouping, priced when a day is rolled.

import django.db.models.deletion
from django.db import migrations, models


def forget_usage(apps, schema_editor):
    """The rows rolled so far have no prices: the next refresh rolls every day again."""
    apps.get_model("tasks", "UsageRollup").objects.all().delete()
    apps.get_model("tasks", "DailyUsage").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("tasks", "0019_account_rollup")]

    operations = [
        migrations.RunPython(forget_usage, migrations.RunPython.noop),
        migrations.AddField(
            model_name="dailyusage",
            name="charged",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="cost",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="currency",
            field=models.CharField(blank=True, max_length=3),
        ),
        migrations.AddField(
            model_name="usagerollup",
            name="stale_from",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="UsageCell",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("dimensions", models.CharField(max_length=40)),
                ("day", models.DateField()),
                ("caller", models.CharField(blank=True, db_default="", max_length=200)),
                ("account", models.CharField(blank=True, db_default="", max_length=64)),
                ("action", models.CharField(blank=True, db_default="", max_length=64)),
                ("mode", models.CharField(blank=True, db_default="", max_length=10)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("tasks", models.PositiveIntegerField()),
                ("succeeded", models.PositiveIntegerField()),
                ("failed", models.PositiveIntegerField()),
                ("cancelled", models.PositiveIntegerField()),
                ("run_seconds", models.FloatField()),
                ("quota_charged", models.PositiveIntegerField()),
                ("charged", models.PositiveIntegerField()),
                ("charged_failed", models.PositiveIntegerField()),
                ("cost", models.BigIntegerField()),
                ("source", models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tasks.source")),
            ],
            options={
                "indexes": [models.Index(fields=["dimensions", "day"], name="usagecell_dims_day_idx")],
            },
        ),
    ]
