"""Issue 17's figure: /usage/ over a big mirror against the task list page, server-side
time through Django's test client (as bench/pages.py).

    DATABASE_URL=... python bench/usage.py      (prints one JSON object)

A month grouped by caller × action, and a year grouped by day × account, each the
median of several requests after a warm-up (the warm-up rolls the usage up the first
time; later requests find it up to date, as a page does).
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
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

REPEAT = 5


def median_seconds(client, url):
    started = time.perf_counter()
    assert client.get(url).status_code == 200, url  # warm-up
    first = time.perf_counter() - started
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), first


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
    list_s, _ = median_seconds(client, f"/tasks/?{list_query}")
    month = {"start": today.replace(day=1).isoformat(), "end": today.isoformat(),
             "rows": "caller", "cols": "action"}  # fmt: skip
    year = {"start": (today - timedelta(days=364)).isoformat(), "end": today.isoformat(),
            "rows": "day", "cols": "account"}  # fmt: skip
    month_s, first_roll_s = median_seconds(client, f"/usage/?{urlencode(month)}")
    year_s, _ = median_seconds(client, f"/usage/?{urlencode(year)}")
    year_csv_s, _ = median_seconds(client, f"/usage/?{urlencode({**year, 'format': 'csv'})}")
    figures = {
        "usage_list_s": list_s,
        "usage_first_roll_s": first_roll_s,
        "usage_month_s": month_s,
        "usage_month_vs_list": month_s / list_s,
        "usage_year_s": year_s,
        "usage_year_vs_list": year_s / list_s,
        "usage_year_csv_s": year_csv_s,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
