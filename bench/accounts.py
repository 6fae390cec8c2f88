"""Figure 10: the Discord accounts page over a big mirror, beside the task list page.

    DATABASE_URL=... python bench/accounts.py      (prints one JSON object)

Run by `make bench` on the database the page figures used (args.rows tasks, spread by
bench/fixtures.py over its ACCOUNTS channels). Adds the Account rows of those channels,
times the accounts' roll-up's first roll of the week (tasks/accounts/rollup.py; once, a
page pays it on a fresh mirror) and a refresh that looks for changed tasks (a page's
once a minute), then times `/discord-accounts/` in turn with the list page
(bench/common.page_medians).
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import list_url, page_medians, setup_django  # noqa: E402

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from fixtures import ACCOUNTS  # noqa: E402

from tasks.accounts import rollup  # noqa: E402
from tasks.models import Account, AccountRollup, Source, Task  # noqa: E402


def add_accounts():
    """The Account rows of the channels the fixture's tasks ran on."""
    source = Source.objects.order_by("pk").first()
    Account.objects.filter(source=source).delete()
    Account.objects.bulk_create(
        Account(
            source=source,
            account_id=channel,
            channel_id=channel,
            name=f"bench account {n}",
            day_draw_limit=200,
        )
        for n, channel in enumerate(ACCOUNTS)
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # As autovacuum does in a live mirror: index-only scans need the visibility map.
            cursor.execute(f"VACUUM ANALYZE {Task._meta.db_table}")


def seconds(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main():
    add_accounts()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    AccountRollup.objects.all().delete()
    figures = {
        "accounts_roll_s": seconds(rollup.refresh),
        "accounts_scan_s": seconds(rollup.refresh),
        "accounts_tasks": Task.objects.count(),
    }
    reference = list_url()
    times = page_medians(client, [reference, "/discord-accounts/"])
    figures["accounts_s"] = times["/discord-accounts/"]
    figures["accounts_list_s"] = times[reference]
    figures["accounts_vs_list"] = figures["accounts_s"] / figures["accounts_list_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
