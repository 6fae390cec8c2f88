"""Figure 8: the Discord accounts page over a big mirror, beside the task list page.

    DATABASE_URL=... python bench/accounts.py      (prints one JSON object)

Run by `make bench` on the database the page figures used (args.rows tasks). Spreads
those tasks over ACCOUNTS accounts (the fixture runs them all on one channel), adds the
Account rows, then times `/discord-accounts/` (every account's figures uncached) and
`/tasks/` the same way as bench/pages.py: the median of several requests after a warm-up.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from pages import median_seconds  # noqa: E402

from tasks.models import Account, Source, Task  # noqa: E402

ACCOUNTS = 50
CHANNEL = "11000000000000000"  # + two digits: a channel id per account


def spread_tasks():
    """Every task on one of ACCOUNTS channels, by its id; the Account rows to match."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Task._meta.db_table} SET account = "
            f"'{CHANNEL}' || CAST(10 + id % {ACCOUNTS} AS TEXT)"
        )
    source = Source.objects.order_by("pk").first()
    Account.objects.filter(source=source).delete()
    Account.objects.bulk_create(
        Account(
            source=source,
            account_id=f"{CHANNEL}{10 + n}",
            channel_id=f"{CHANNEL}{10 + n}",
            name=f"bench account {n}",
            day_draw_limit=200,
        )  # fmt: skip
        for n in range(ACCOUNTS)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            cursor.execute(f"VACUUM {Task._meta.db_table}")  # index-only scans need it


def main():
    spread_tasks()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    figures = {
        "accounts_s": median_seconds(client, "/discord-accounts/"),
        "accounts_list_s": median_seconds(client, "/tasks/"),
        "accounts_tasks": Task.objects.count(),
    }
    figures["accounts_vs_list"] = figures["accounts_s"] / figures["accounts_list_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
