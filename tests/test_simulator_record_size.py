"""The simulator's small records (mj_simulator --record-size small, bench/run.py): the
same tasks as the full records, without buttons, about 1 KB each."""

import pytest
import requests

from tasks.simulator import ManualClock, Simulator

START_MS = 1_765_000_000_000  # one moment for both simulators: the same tasks, the same states


def listed(record_size):
    sim = Simulator(tasks=300, clock=ManualClock(START_MS), record_size=record_size).start()
    try:
        response = requests.get(
            sim.url + "/mj/task/list", headers={"mj-api-secret": sim.secret}, timeout=60
        )
        return response.content, response.json()
    finally:
        sim.stop()


def test_small_records_are_the_full_ones_without_buttons():
    full_body, full = listed("full")
    small_body, small = listed("small")
    assert any(record["buttons"] for record in full)
    assert all("buttons" not in record for record in small)
    # The same tasks in the same states, with the same fields but one.
    assert [(r["id"], r["status"], list(r)) for r in small] == [
        (r["id"], r["status"], [key for key in r if key != "buttons"]) for r in full
    ]
    assert 700 < len(small_body) / len(small) < 1300 < len(full_body) / len(full)


def test_an_unknown_record_size_is_refused():
    with pytest.raises(ValueError, match="record size"):
        Simulator(tasks=0, record_size="huge")
