"""/usage/ over tasks synced over real HTTP from the simulator: the report equals the
figures computed here from the records the simulator serves."""

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from tasks.ingest.sync import sync_source

pytestmark = pytest.mark.django_db
ZONE = "Asia/Shanghai"
# new-api's public prices (issue 17), the migration's defaults; any other action 0.1.
PRICES = {"VIDEO": "0.8", "DESCRIBE": "0.05", "UPSCALE": "0.05", "SWAP_FACE": "0.05",
          "UPLOAD": "0.05", "INPAINT": "0", "CUSTOM_ZOOM": "0"}  # fmt: skip
MODES = ("fast", "relax", "turbo")


def expected_from(records):
    """{(caller, action): [tasks, succeeded, failed, cancelled, run seconds, cost]}."""
    out = defaultdict(lambda: [0, 0, 0, 0, 0.0, Decimal(0)])
    days = []
    for r in records:
        caller = r.get("userId") or r.get("user_id") or r.get("state") or ""
        action, status = r["action"], r["status"]
        submitted = datetime.fromtimestamp(r["submitTime"] / 1000, UTC)
        days.append(submitted.astimezone(ZoneInfo(ZONE)).date())
        run = 0.0
        if r.get("startTime") and r.get("finishTime"):
            run = (r["finishTime"] - r["startTime"]) / 1000
        cost = Decimal(0) if status in ("FAILURE", "CANCEL") else Decimal(PRICES.get(action, "0.1"))
        for key in ((caller, action), (caller, "*"), ("*", "*")):
            f = out[key]
            f[0] += 1
            f[1] += status == "SUCCESS"
            f[2] += status == "FAILURE"
            f[3] += status == "CANCEL"
            f[4] += run
            f[5] += cost
    return out, min(days), max(days)


def test_a_synced_proxy_gives_the_report_its_records_give(
    settings, start_sim, make_source, admin_client
):
    settings.TIME_ZONE = ZONE
    sim = start_sim("trueai", tasks=80)
    source = make_source(sim, name="main")
    sync_source(source, full=True)
    records = requests.get(
        f"{sim.url}/mj/task/list", headers={"Authorization": sim.secret}, timeout=30
    ).json()
    assert any(r.get("userId") for r in records) and any(r.get("mode") for r in records)
    want, first, last = expected_from(records)

    response = admin_client.get(
        "/usage/", {"start": first.isoformat(), "end": last.isoformat(), "rows": "caller",
                    "cols": "action", "format": "csv"},
    )  # fmt: skip
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    got = {(r, c): [int(v[0]), int(v[1]), int(v[2]), int(v[3]), float(v[4]), v[5]]
           for r, c, *v in lines}  # fmt: skip
    assert got.keys() == want.keys()
    for key, f in want.items():
        assert got[key][:4] == f[:4], key
        assert got[key][4] == pytest.approx(f[4], abs=0.01), key
        assert got[key][5] == f"{f[5]:.2f}", key

    # By mode too: the simulator's modes arrive as fast, relax or turbo.
    by_mode = admin_client.get(
        "/usage/", {"start": first.isoformat(), "end": last.isoformat(), "rows": "mode",
                    "cols": "source", "format": "csv"},
    )  # fmt: skip
    modes = {
        line.split(",")[0] for line in b"".join(by_mode.streaming_content).decode().split()[1:]
    }
    wanted = {(r.get("mode") or "").lower() for r in records}
    assert modes - {"*"} == {m if m in MODES else "" for m in wanted}
