import time

from django.core.management.base import BaseCommand

from tasks.ingest.backfill import BATCH, backfill
from tasks.models import Task

PROGRESS_EVERY = 50_000  # tasks between two progress lines


class Command(BaseCommand):
    help = (
        "Derive the parameter, caller and media columns of stored tasks again from their raw "
        "records, in batches by pk (migration 0013 runs the same once)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--after", type=int, default=0, help="start after this pk (to resume a run)"
        )
        parser.add_argument("--batch", type=int, default=BATCH, help="tasks per transaction")

    def handle(self, *args, after=0, batch=BATCH, **options):
        started = time.monotonic()
        reported = [0]

        def progress(done, last_pk):
            if done - reported[0] >= PROGRESS_EVERY:
                reported[0] = done
                rate = done / max(time.monotonic() - started, 1e-6)
                self.stdout.write(
                    f"{done:,} tasks, up to pk {last_pk} ({rate:,.0f}/s); "
                    f"to resume: derive_columns --after {last_pk}"
                )

        done, last_pk = backfill(Task, after=after, batch=max(1, batch), progress=progress)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"derived the columns of {done:,} tasks, up to pk {last_pk}, in {elapsed:.1f} s"
        )
