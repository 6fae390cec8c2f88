# Usage and cost (/usage/, tasks/usage/): the price table with new-api's public per-call
# prices as defaults, and the daily usage roll-up.

import datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# new-api's public per-call prices in USD (issue 17); "" is any other action.
DEFAULT_PRICES = {
    "VIDEO": "0.8",
    **dict.fromkeys(
        ["IMAGINE", "EDITS", "VARIATION", "REROLL", "BLEND", "MODAL", "ZOOM", "SHORTEN",
         "HIGH_VARIATION", "LOW_VARIATION", "PAN"],
        "0.1",
    ),
    **dict.fromkeys(["DESCRIBE", "UPSCALE", "SWAP_FACE", "UPLOAD"], "0.05"),
    **dict.fromkeys(["INPAINT", "CUSTOM_ZOOM"], "0"),
    "": "0.1",
}
# Valid since before any task: a price an admin adds later starts on its own day.
SINCE = datetime.date(1970, 1, 1)


def create_prices(apps, schema_editor):
    Price = apps.get_model("tasks", "Price")
    for action, price in DEFAULT_PRICES.items():
        Price.objects.get_or_create(
            action=action, mode="", source=None, valid_from=SINCE,
            defaults={"price": price, "currency": "USD"},
        )


def let_viewers_see_prices(apps, schema_editor):
    # As 0004 did for the other models: viewers read prices (the usage page shows them).
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    group = Group.objects.filter(name="viewer").first()
    if group is None:
        return
    ct, _ = ContentType.objects.get_or_create(app_label="tasks", model="price")
    perm, _ = Permission.objects.get_or_create(
        content_type=ct, codename="view_price", defaults={"name": "Can view price"}
    )
    group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0015_curation"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name='UsageRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('zone', models.CharField(max_length=64)),
                ('through', models.DateTimeField()),
                ('scanned', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='DailyUsage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('caller', models.CharField(blank=True, max_length=200)),
                ('account', models.CharField(blank=True, max_length=64)),
                ('action', models.CharField(blank=True, max_length=64)),
                ('mode', models.CharField(blank=True, max_length=10)),
                ('status', models.CharField(blank=True, max_length=64)),
                ('tasks', models.PositiveIntegerField()),
                ('run_seconds', models.FloatField(default=0)),
                ('quota_charged', models.PositiveIntegerField(default=0)),
                ('source', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tasks.source')),
            ],
            options={
                'verbose_name_plural': 'daily usage',
                'constraints': [models.UniqueConstraint(fields=('day', 'source', 'caller', 'account', 'action', 'mode', 'status'), name='dailyusage_day_uniq')],
            },
        ),
        migrations.CreateModel(
            name='Price',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(blank=True, help_text='Blank: any other action.', max_length=64)),
                ('mode', models.CharField(blank=True, choices=[('', 'any mode'), ('fast', 'fast'), ('relax', 'relax'), ('turbo', 'turbo')], max_length=10)),
                ('price', models.DecimalField(decimal_places=4, help_text='Per task.', max_digits=12)),
                ('currency', models.CharField(default='USD', max_length=3)),
                ('charge_failed', models.BooleanField(default=False, help_text="Charge failed and cancelled tasks too. Without it only those the proxy says it charged are (new-api's quota on a failed row).")),
                ('valid_from', models.DateField(default=django.utils.timezone.localdate, help_text='In TIME_ZONE.')),
                ('source', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tasks.source')),
            ],
            options={
                'ordering': ['source', 'action', 'mode', '-valid_from'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('source__isnull', True)), fields=('action', 'mode', 'valid_from'), name='price_default_uniq'), models.UniqueConstraint(condition=models.Q(('source__isnull', False)), fields=('source', 'action', 'mode', 'valid_from'), name='price_source_uniq')],
            },
        ),
        migrations.RunPython(create_prices, migrations.RunPython.noop),
        migrations.RunPython(let_viewers_see_prices, migrations.RunPython.noop),
    ]
