from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from tasks.bootstrap import ensure_default_source
from tasks.models import Source


class Command(BaseCommand):
    help = "Print the path of a source's notify-hook endpoint (for the proxy's mj.notify-hook)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--source", help="the source's name (default: the only one, or 'default')"
        )

    def handle(self, *args, source=None, **options):
        ensure_default_source()
        if source:
            found = Source.objects.filter(name=source).first()
        elif Source.objects.count() == 1:
            found = Source.objects.first()
        else:
            found = Source.objects.filter(name="default").first()
        if found is None:
            names = ", ".join(Source.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no such source; pick one with --source (sources: {names})")
        self.stdout.write(
            f"Set the proxy's mj.notify-hook to this path on mjsite's public URL ({found.name}):"
        )
        self.stdout.write(reverse("hooks:receive", args=[found.hook_token]))
