# Issue 16: the per-account roll-up behind /discord-accounts/ (tasks/accounts/rollup.py)

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasks", "0018_alerts")]

    operations = [
        migrations.CreateModel(
            name="AccountHour",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("hour", models.DateTimeField()),
                ("account", models.CharField(max_length=64)),
                ("status", models.CharField(blank=True, max_length=64)),
                ("mode", models.CharField(blank=True, max_length=10)),
                ("n", models.PositiveIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("hour", "account", "status", "mode"), name="accounthour_uniq"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="AccountRollup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("through", models.DateTimeField()),
                ("scanned", models.DateTimeField()),
                ("week_from", models.DateTimeField(null=True)),
                ("day_from", models.DateTimeField(null=True)),
                ("today_from", models.DateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="AccountTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("account", models.CharField(max_length=64)),
                ("status", models.CharField(blank=True, max_length=64)),
                ("mode", models.CharField(blank=True, max_length=10)),
                ("week", models.PositiveIntegerField()),
                ("day", models.PositiveIntegerField()),
                ("today", models.PositiveIntegerField()),
            ],
        ),
    ]
