from django.core.management.base import BaseCommand, CommandError

from tasks.bootstrap import ensure_default_source
from tasks.ingest.sync import sync_source
from tasks.models import Source, SyncRun
from tasks.redaction import redact, secret_values


class Command(BaseCommand):
    help = "Run one sync pass over every enabled source (or one) now, in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--source", help="the name of one source")
        parser.add_argument("--full", action="store_true", help="also read the whole /mj/task/list")
        parser.add_argument(
            "--wait",
            type=int,
            default=120,
            help="seconds to wait for a running pass of the same source (default 120)",
        )

    def handle(self, *args, source=None, full=False, wait=120, **options):
        ensure_default_source()
        sources = Source.objects.filter(enabled=True).order_by("name")
        if source:
            sources = Source.objects.filter(name=source)
            if not sources.exists():
                names = ", ".join(Source.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"no source named {source!r} (sources: {names})")
        if not sources:
            raise CommandError("no enabled source: set MJ_PROXY_URL, or add a source in the admin")
        failed = False
        for src in sources:
            run = sync_source(src, full=full, wait_seconds=wait)
            line = f"{run.summary()} in {run.duration.total_seconds():.1f} s"
            self.stdout.write(line)
            if run.outcome != SyncRun.Outcome.OK:
                failed = True
                self.stderr.write(f"{src.name}: {run.error}")
                if run.error_detail:
                    # The operator may read what the proxy answered (the overview may not),
                    # with the sources' secrets masked.
                    answer = redact(run.error_detail, secret_values())
                    self.stderr.write(f"{src.name}: the proxy answered: {answer}")
        if failed:
            raise SystemExit(1)
