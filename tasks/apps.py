from django.apps import AppConfig
from django.db.models.signals import post_init, post_migrate


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Midjourney mirror"

    def ready(self):
        from tasks import checks  # noqa: F401  (registers the system checks)
        from tasks.db import lookups, search  # noqa: F401  (lookups registers const, const_in)

        # The SQLite search triggers call a Python function: register it on every connection.
        search.install()

        post_migrate.connect(after_migrate, sender=self)
        # The logging filter masks the secrets of every source this process has loaded.
        post_init.connect(remember_secrets, sender=self.get_model("Source"))


def after_migrate(sender, using="default", **kwargs):
    from tasks.bootstrap import ensure_alert_channel, ensure_default_source, ensure_schedules

    ensure_schedules()
    ensure_default_source()
    ensure_alert_channel()


def remember_secrets(sender, instance, **kwargs):
    from tasks.redaction import SECRET_FIELDS, remember

    loaded = instance.__dict__  # a deferred field stays deferred: no query
    remember([loaded.get(name) for name in SECRET_FIELDS])
