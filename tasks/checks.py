"""System checks that warn about configuration that would break the sync."""

from django.conf import settings
from django.core.checks import Warning, register


@register()
def check_q_cluster(app_configs, **kwargs):
    conf = settings.Q_CLUSTER
    if conf.get("timeout") and conf.get("retry") and conf["timeout"] >= conf["retry"]:
        return [
            Warning(
                "Q_CLUSTER timeout is not below retry: a long sync pass would be "
                "handed out a second time while it still runs.",
                hint="Set Q_TIMEOUT below Q_RETRY.",
                id="tasks.W001",
            )
        ]
    return []


@register()
def check_proxy_url(app_configs, **kwargs):
    url = settings.MJ_PROXY_URL
    if url and not url.startswith(("http://", "https://")):
        return [
            Warning(
                f"MJ_PROXY_URL {url!r} does not start with http:// or https://.",
                hint="Give the proxy's base URL, the part before /mj/...",
                id="tasks.W002",
            )
        ]
    return []
