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
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import get_seconds, list_url, page_medians, setup_django  # noqa: E402

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from tasks.models import DailyUsage, UsageCell  # noqa: E402


def main():
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    today = timezone.localdate()
    month = {"start": today.replace(day=1).isoformat(), "end": today.isoformat(),
             "rows": "caller", "cols": "action"}  # fmt: skip
    year = {"start": (today - timedelta(days=364)).isoformat(), "end": today.isoformat(),
            "rows": "day", "cols": "account"}  # fmt: skip
    year_csv = {**year, "format": "csv"}
    urls = [list_url(), f"/usage/?{urlencode(month)}",
            f"/usage/?{urlencode(year)}", f"/usage/?{urlencode(year_csv)}"]  # fmt: skip
    first_roll_s = get_seconds(client, urls[1])  # the first /usage/ rolls everything up
    list_s, month_s, year_s, year_csv_s = page_medians(client, urls).values()
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
