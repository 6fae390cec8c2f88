"""Issue 17's figure: /usage/ over a big mirror against the task list page, server-side
time through Django's test client (as bench/pages.py).

    DATABASE_URL=... python bench/usage.py      (prints one JSON object)

A month grouped by caller × action, and a year grouped by day × account, each the
median of several requests after a warm-up, taken in turn with the list page's (the
first request rolls the usage up the first time; later ones find it up to date, as a
page does). Then the roll-up's rows: DailyUsage's, and UsageCell's per grouping
(tasks/usage/cells.py keeps a grouping only where it is much smaller than DailyUsage).
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from tasks.models import DailyUsage, UsageCell  # noqa: E402

REPEAT = 7


def seconds(client, url):
    start = time.perf_counter()
    response = client.get(url)
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    assert response.status_code == 200, (url, response.status_code)
    return time.perf_counter() - start


def medians(client, urls):
    """{url: median seconds}, the urls taken in turn REPEAT times after a warm-up each,
    so that other work on the machine weighs on all of them alike."""
    times = {url: [] for url in urls}
    for _ in range(REPEAT):
        for url in urls:
            times[url].append(seconds(client, url))
    return {url: statistics.median(t) for url, t in times.items()}


def main():
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    since = (timezone.now() - timedelta(days=7)).replace(microsecond=0)
    list_query = urlencode(
        {"status": "SUCCESS", "action": "IMAGINE", "submitted_after": since.isoformat()}
    )
    month = {"start": today.replace(day=1).isoformat(), "end": today.isoformat(),
             "rows": "caller", "cols": "action"}  # fmt: skip
    year = {"start": (today - timedelta(days=364)).isoformat(), "end": today.isoformat(),
            "rows": "day", "cols": "account"}  # fmt: skip
    year_csv = {**year, "format": "csv"}
    urls = [f"/tasks/?{list_query}", f"/usage/?{urlencode(month)}",
            f"/usage/?{urlencode(year)}", f"/usage/?{urlencode(year_csv)}"]  # fmt: skip
    first_roll_s = seconds(client, urls[1])  # the first /usage/ rolls everything up
    for url in urls:
        seconds(client, url)  # warm-up
    list_s, month_s, year_s, year_csv_s = medians(client, urls).values()
    figures = {
        "usage_list_s": list_s,
        "usage_first_roll_s": first_roll_s,
        "usage_month_s": month_s,
        "usage_month_vs_list": month_s / list_s,
        "usage_year_s": year_s,
        "usage_year_vs_list": year_s / list_s,
        "usage_year_csv_s": year_csv_s,
        "usage_daily_rows": DailyUsage.objects.count(),
        "usage_cell_rows": dict(
            UsageCell.objects.values_list("dimensions").annotate(Count("id")).order_by()
        ),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
