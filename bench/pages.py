"""Figures 5 and 6: pages over a big mirror, server-side time through Django's test client.

    DATABASE_URL=... python bench/pages.py      (prints one JSON object)

Each figure is the median of several requests after a warm-up. The reference is
the stock Django admin changelist (a plain ModelAdmin with the same filters) on
the same database; the overview is measured uncached.
"""

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from common import SEARCHES  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

from tasks.models import Task  # noqa: E402
from tasks.web.views import PAGE_SIZE, make_cursor  # noqa: E402

REPEAT = 5
DEEP_PAGE = 1000

stock_site = admin.AdminSite(name="stock")
stock_site.register(Task, list_filter=["status", "action", "submitted"])
urlpatterns = [
    path("stock-admin/", stock_site.urls),
    path("", include("mjsite.urls")),
]


def median_seconds(client, url, before=None):
    client.get(url)  # warm-up
    times = []
    for _ in range(REPEAT):
        if before:
            before()
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times)


@override_settings(ROOT_URLCONF=__name__)
def main():
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    since = (timezone.now() - timedelta(days=7)).replace(microsecond=0)
    filters = {"status": "SUCCESS", "action": "IMAGINE"}
    query = urlencode({**filters, "submitted_after": since.isoformat()})
    deep_row = (
        Task.objects.filter(submitted__gte=since, **filters)
        .order_by("-submitted", "-id")
        .only("pk", "submitted")[DEEP_PAGE * PAGE_SIZE - 1 : DEEP_PAGE * PAGE_SIZE]
        .first()
    )
    admin_query = urlencode(
        {"status__exact": "SUCCESS", "action__exact": "IMAGINE", "submitted__gte": str(since)}
    )
    figures = {
        "list_first_s": median_seconds(client, f"/tasks/?{query}"),
        "admin_first_s": median_seconds(client, f"/stock-admin/tasks/task/?{admin_query}"),
        "overview_s": median_seconds(client, "/", before=cache.clear),
    }
    task_id = Task.objects.order_by("-pk").values_list("task_id", flat=True).first()
    for name, params in {**SEARCHES, "task_id": {"q": task_id}}.items():
        if name == "chinese_newest_week":
            params = {**params, "submitted_after": since.isoformat()}
        figures[f"search_{name}_s"] = median_seconds(client, f"/tasks/?{urlencode(params)}")
        figures[f"search_{name}_vs_list"] = figures[f"search_{name}_s"] / figures["list_first_s"]
    # README's earlier row: the Chinese word.
    figures["search_s"] = figures["search_chinese_word_s"]
    if deep_row is not None:
        cursor = make_cursor(deep_row, "submitted")
        deep_url = f"/tasks/?{query}&{urlencode({'cursor': cursor})}"
        figures["list_deep_s"] = median_seconds(client, deep_url)
        figures["deep_vs_first"] = figures["list_deep_s"] / figures["list_first_s"]
    figures["list_vs_admin"] = figures["admin_first_s"] / figures["list_first_s"]
    figures["overview_vs_list"] = figures["overview_s"] / figures["list_first_s"]
    figures["search_vs_list"] = figures["search_s"] / figures["list_first_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
