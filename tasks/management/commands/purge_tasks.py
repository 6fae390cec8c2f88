"""Delete old tasks from the mirror. Never runs on its own: history is kept forever
unless someone runs this (by hand or from cron).

Deletes in batches, each in its own short transaction, so a purge of millions of rows
never holds a lock for long, and a purge that is stopped halfway keeps what it did.
A task's events go with it; its archived image files too, unless another task still
uses the same (content-addressed) file. The overview's hourly counts of the hours it
deleted from are recomputed by the next roll-up refresh (tasks/reports/rollup.py).
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tasks import deletion
from tasks.models import Task, TaskEvent


class Command(BaseCommand):
    help = (
        "Delete tasks submitted more than DAYS days ago (by first sight when the proxy "
        "gave no submit time), in batches. Nothing is deleted unless this runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument(
            "--status",
            action="append",
            default=[],
            help="only tasks in this status (repeat it, or separate by commas); default: any",
        )
        parser.add_argument("--source", help="only the tasks of this source (its name)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--batch-size", type=int, default=1000, help="tasks per transaction")

    def handle(self, *args, older_than, status, source, dry_run, batch_size, **options):
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        statuses = sorted({s.strip() for arg in status for s in arg.split(",") if s.strip()})
        cutoff = timezone.now() - timedelta(days=older_than)
        # submitted: a range of task_submitted_idx; first_seen only for tasks without one.
        old = Task.objects.filter(
            Q(submitted__lt=cutoff) | Q(submitted__isnull=True, first_seen__lt=cutoff)
        )
        if statuses:
            old = old.filter(status__in=statuses)
        if source:
            old = old.filter(source__name=source)
        what = f"tasks submitted before {cutoff:%Y-%m-%d %H:%M} UTC"
        if statuses:
            what += f" with status {', '.join(statuses)}"
        if source:
            what += f" of source {source}"

        if dry_run:
            tasks = old.count()
            events = TaskEvent.objects.filter(task__in=old).count()
            self.stdout.write(f"would delete {tasks} {what} (and {events} events); dry run")
            return

        deleted_tasks = deleted_events = deleted_files = 0
        while True:
            with transaction.atomic():
                rows = list(old.order_by("pk").values_list(*deletion.COLUMNS)[:batch_size])
                if not rows:
                    break
                tasks, events = deletion.delete_tasks(rows)
            deleted_tasks += tasks
            deleted_events += events
            deleted_files += deletion.delete_unused_files(rows)  # after the commit
            self.stdout.write(f"deleted {deleted_tasks} tasks so far")
        self.stdout.write(
            f"deleted {deleted_tasks} {what} "
            f"(and {deleted_events} events, {deleted_files} image files)"
        )
