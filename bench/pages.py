"""Figures 5 and 6: pages over a big mirror, server-side time through Django's test client.

    DATABASE_URL=... python bench/pages.py      (prints one JSON object)

Each figure is the median of several requests after a warm-up, taken in turn with its
reference (bench/common.page_medians): the list page against the stock Django admin
changelist (a plain ModelAdmin with the same filters); the overview, measured uncached,
and each search of common.SEARCHES against the list page.
"""

import json
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SEARCHES, list_url, page_medians, setup_django  # noqa: E402

setup_django()

from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402

from tasks.models import Task  # noqa: E402
from tasks.web.views import PAGE_SIZE, make_cursor  # noqa: E402

DEEP_PAGE = 1000

stock_site = admin.AdminSite(name="stock")
stock_site.register(Task, list_filter=["status", "action", "submitted"])
urlpatterns = [
    path("stock-admin/", stock_site.urls),
    path("", include("mjsite.urls")),
]


@override_settings(ROOT_URLCONF=__name__)
def main():
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    since = (timezone.now() - timedelta(days=7)).replace(microsecond=0)
    filters = {"status": "SUCCESS", "action": "IMAGINE"}
    deep_row = (
        Task.objects.filter(submitted__gte=since, **filters)
        .order_by("-submitted", "-id")
        .only("pk", "submitted")[DEEP_PAGE * PAGE_SIZE - 1 : DEEP_PAGE * PAGE_SIZE]
        .first()
    )
    admin_query = urlencode(
        {"status__exact": "SUCCESS", "action__exact": "IMAGINE", "submitted__gte": str(since)}
    )
    reference = list_url()
    admin_url = f"/stock-admin/tasks/task/?{admin_query}"
    urls = [reference, admin_url, "/"]
    if deep_row is not None:
        cursor = make_cursor(deep_row, "submitted")
        urls.append(f"{reference}&{urlencode({'cursor': cursor})}")
    times = page_medians(client, urls, before={"/": cache.clear})
    figures = {
        "list_first_s": times[reference],
        "admin_first_s": times[admin_url],
        "overview_s": times["/"],
    }
    if deep_row is not None:
        figures["list_deep_s"] = times[urls[-1]]
        figures["deep_vs_first"] = figures["list_deep_s"] / figures["list_first_s"]
    figures["list_vs_admin"] = figures["admin_first_s"] / figures["list_first_s"]
    figures["overview_vs_list"] = figures["overview_s"] / figures["list_first_s"]
    # Each search in turn with the list page: its own reference, measured beside it.
    task_id = Task.objects.order_by("-pk").values_list("task_id", flat=True).first()
    for name, params in {**SEARCHES, "task_id": {"q": task_id}}.items():
        if name == "chinese_newest_week":
            params = {**params, "submitted_after": since.isoformat()}
        url = f"/tasks/?{urlencode(params)}"
        times = page_medians(client, [reference, url])
        figures[f"search_{name}_s"] = times[url]
        figures[f"search_{name}_list_s"] = times[reference]
        figures[f"search_{name}_vs_list"] = times[url] / times[reference]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
