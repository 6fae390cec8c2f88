# Discord accounts (issue 16): Account, its timeline AccountEvent, the per-source
# AccountSync status, and the index the accounts' figures read on Task.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0013_derived_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name='Account',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('account_id', models.CharField(max_length=64)),
                ('channel_id', models.CharField(blank=True, max_length=64)),
                ('guild_id', models.CharField(blank=True, max_length=64)),
                ('name', models.CharField(blank=True, max_length=200)),
                ('enabled', models.BooleanField(default=True)),
                ('disabled_reason', models.TextField(blank=True)),
                ('locked', models.BooleanField(default=False)),
                ('fast_exhausted', models.BooleanField(default=False)),
                ('fast_time_remaining', models.CharField(blank=True, max_length=100)),
                ('today_draws', models.IntegerField(blank=True, null=True)),
                ('day_draw_limit', models.IntegerField(blank=True, null=True)),
                ('day_relax_limit', models.IntegerField(blank=True, null=True)),
                ('running', models.PositiveIntegerField(blank=True, null=True)),
                ('queued', models.PositiveIntegerField(blank=True, null=True)),
                ('core_size', models.PositiveIntegerField(blank=True, null=True)),
                ('queue_size', models.PositiveIntegerField(blank=True, null=True)),
                ('raw', models.TextField(default='{}')),
                ('first_seen', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_seen', models.DateTimeField(default=django.utils.timezone.now)),
                ('gone_since', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'verbose_name': 'Discord account',
            },
        ),
        migrations.CreateModel(
            name='AccountEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seen', models.DateTimeField(default=django.utils.timezone.now)),
                ('enabled', models.BooleanField()),
                ('locked', models.BooleanField()),
                ('fast_exhausted', models.BooleanField()),
                ('disabled_reason', models.TextField(blank=True)),
                ('gone', models.BooleanField(default=False)),
            ],
        ),
        migrations.CreateModel(
            name='AccountSync',
            fields=[
                ('source', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='account_sync', serialize=False, to='tasks.source')),
                ('checked', models.DateTimeField(default=django.utils.timezone.now)),
                ('available', models.BooleanField(default=False)),
                ('reason', models.TextField(blank=True)),
                ('listed', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.AddIndex(
            model_name='task',
            index=models.Index(fields=['account', '-submitted', 'status', 'mode'], name='task_account_submitted_idx'),
        ),
        migrations.AddField(
            model_name='account',
            name='source',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='accounts', to='tasks.source'),
        ),
        migrations.AddField(
            model_name='accountevent',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='tasks.account'),
        ),
        migrations.AddIndex(
            model_name='account',
            index=models.Index(fields=['channel_id'], name='account_channel_idx'),
        ),
        migrations.AddConstraint(
            model_name='account',
            constraint=models.UniqueConstraint(fields=('source', 'account_id'), name='account_source_account_id_uniq'),
        ),
        migrations.AddIndex(
            model_name='accountevent',
            index=models.Index(fields=['account', 'seen'], name='accountevent_account_seen_idx'),
        ),
    ]
