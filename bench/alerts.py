"""Issue 18's figure: one evaluation of every alert rule over a big mirror against the task
list page (server-side time through Django's test client, as bench/pages.py).

    DATABASE_URL=... python bench/alerts.py      (prints one JSON object)

Each is the median of several runs after a warm-up (the warm-up opens the incidents the
mirror's state calls for; later runs find them open, as the schedule does every minute).
No channel is set up: the figure is the rules' reading, not a webhook's answer.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from tasks.alerts.incidents import evaluate  # noqa: E402
from tasks.models import Channel  # noqa: E402

REPEAT = 5


def median_seconds(run):
    run()  # warm-up
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    Channel.objects.update(enabled=False)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    def list_page():
        assert client.get("/tasks/").status_code == 200

    list_s = median_seconds(list_page)
    alerts_s = median_seconds(evaluate)
    print(
        json.dumps(
            {"alerts_s": alerts_s, "alerts_list_s": list_s, "alerts_vs_list": alerts_s / list_s}
        )
    )


if __name__ == "__main__":
    main()
