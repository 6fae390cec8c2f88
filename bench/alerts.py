"""Issue 18's figure: one evaluation of every alert rule over a big mirror against the task
list page (server-side time through Django's test client, as bench/pages.py).

    DATABASE_URL=... python bench/alerts.py      (prints one JSON object)

Each is the median of several runs after a warm-up (the warm-up opens the incidents the
mirror's state calls for; later runs find them open, as the schedule does every minute).
No channel is set up: the figure is the rules' reading, not a webhook's answer.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import get_seconds, list_url, median_seconds, setup_django  # noqa: E402

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from tasks.alerts.incidents import evaluate  # noqa: E402
from tasks.models import Channel  # noqa: E402


def main():
    Channel.objects.update(enabled=False)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    reference = list_url()
    list_s = median_seconds(lambda: get_seconds(client, reference))
    alerts_s = median_seconds(evaluate)
    print(
        json.dumps(
            {"alerts_s": alerts_s, "alerts_list_s": list_s, "alerts_vs_list": alerts_s / list_s}
        )
    )


if __name__ == "__main__":
    main()
