import time

from django.core.management.base import BaseCommand

from tasks.archive.passes import archive_pass
from tasks.archive.status import status_counts


class Command(BaseCommand):
    help = "Run one pass of the image archiver now, in the foreground (the schedule runs the same)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-seconds",
            type=int,
            default=None,
            help="stop claiming new images after this long (default MJ_ARCHIVE_PASS_SECONDS)",
        )

    def handle(self, *args, max_seconds=None, **options):
        started = time.monotonic()
        counts = archive_pass(max_seconds=max_seconds)
        elapsed = time.monotonic() - started
        self.stdout.write(f"{counts} in {elapsed:.1f} s")
        now = status_counts()
        now.pop("none", None)
        self.stdout.write("images now: " + " ".join(f"{k}={n}" for k, n in now.items()))
