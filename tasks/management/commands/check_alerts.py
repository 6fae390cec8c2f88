from django.core.management.base import BaseCommand

from tasks.alerts.incidents import evaluate
from tasks.bootstrap import ensure_alert_channel


class Command(BaseCommand):
    help = (
        "Evaluate every alert rule once, now, in the foreground (the schedule runs the same): "
        "one line per incident opened, still open or resolved."
    )

    def handle(self, *args, **options):
        ensure_alert_channel()
        changes = evaluate()
        for change in changes:
            self.stdout.write(change.line())
        if not changes:
            self.stdout.write("no incidents")
