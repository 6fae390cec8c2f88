# Alerts (issue 18): rules, channels, incidents, deliveries; the rules' rows with their
# default thresholds (tasks/alerts/rules.py keeps the same defaults).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

RULES = {
    "sync_failing": {"failed_passes": 3, "silent_minutes": 10},
    "failure_rate": {"minutes": 15, "percent": 30, "min_tasks": 10},
    "stuck_tasks": {"minutes": 30},
    "archive_lost": {"hours": 24},
    "archive_backlog": {"hours": 6},
    "hook_silent": {"minutes": 30},
    "account_disabled": {},
    "no_enabled_account": {},
    "fast_time_low": {"hours": 1},
}


def create_rules(apps, schema_editor):
    AlertRule = apps.get_model("tasks", "AlertRule")
    for key, params in RULES.items():
        AlertRule.objects.get_or_create(key=key, defaults={"params": params})


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0017_usage"),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.SlugField(max_length=40, unique=True)),
                ('enabled', models.BooleanField(default=True)),
                ('params', models.JSONField(blank=True, default=dict)),
                ('repeat_hours', models.PositiveIntegerField(default=6, help_text='Notify again while an incident stays open this long (0: never).')),
                ('memory', models.JSONField(blank=True, default=dict, editable=False)),
            ],
            options={
                'ordering': ['key'],
            },
        ),
        migrations.CreateModel(
            name='Channel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.SlugField(unique=True)),
                ('url', models.TextField(help_text='An apprise URL, or mailto:someone@example.com')),
                ('enabled', models.BooleanField(default=True)),
                ('created', models.DateTimeField(default=django.utils.timezone.now)),
                ('rules', models.ManyToManyField(blank=True, help_text='None chosen: every rule.', related_name='channels', to='tasks.alertrule')),
                ('sources', models.ManyToManyField(blank=True, help_text='None chosen: every source.', related_name='+', to='tasks.source')),
            ],
        ),
        migrations.CreateModel(
            name='Incident',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=100)),
                ('opened', models.DateTimeField(default=django.utils.timezone.now)),
                ('resolved', models.DateTimeField(blank=True, null=True)),
                ('last_notified', models.DateTimeField(blank=True, null=True)),
                ('summary', models.TextField()),
                ('link', models.CharField(blank=True, max_length=500)),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='incidents', to='tasks.alertrule')),
                ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tasks.source')),
            ],
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('opened', 'Opened'), ('repeat', 'Repeat'), ('resolved', 'Resolved')], max_length=10)),
                ('created', models.DateTimeField(default=django.utils.timezone.now)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed'), ('gave_up', 'Gave Up')], default='pending', max_length=10)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('next_try', models.DateTimeField(blank=True, null=True)),
                ('sent', models.DateTimeField(blank=True, null=True)),
                ('error', models.TextField(blank=True)),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='tasks.channel')),
                ('incident', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='tasks.incident')),
            ],
            options={
                'verbose_name_plural': 'deliveries',
            },
        ),
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(fields=['-opened'], name='incident_opened_idx'),
        ),
        migrations.AddConstraint(
            model_name='incident',
            constraint=models.UniqueConstraint(condition=models.Q(('resolved__isnull', True)), fields=('rule', 'key'), name='incident_open_uniq'),
        ),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(condition=models.Q(('state__in', ['pending', 'failed'])), fields=['next_try'], name='delivery_due_idx'),
        ),
        migrations.RunPython(create_rules, migrations.RunPython.noop),
    ]
