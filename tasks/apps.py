from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Midjourney mirror"

    def ready(self):
        from . import (
            checks,  # noqa: F401  (registers the system checks)
            search,
        )

        # The SQLite search triggers call a Python function: register it on every connection.
        search.install()

        post_migrate.connect(after_migrate, sender=self)


def after_migrate(sender, using="default", **kwargs):
    from .bootstrap import ensure_default_source, ensure_schedules

    ensure_schedules()
    ensure_default_source()
