"""The full pass's list index: checked once, read back only where something changed."""

import io
import json

import pytest

from tasks.ingest import json_items
from tasks.ingest.json_items import iter_items
from tasks.ingest.sync import ingest, sync_source
from tasks.models import InvalidRecord, Source, SyncRun, Task
from tests.faultserver import Reply

pytestmark = pytest.mark.django_db


def record(task_id, **fields):
    return {"id": task_id, "status": "SUCCESS", "progress": "100%", "prompt": "猫", **fields}


class CountingDecoder:
    """json_items.DECODER, counting the items decoded a second time (read back)."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.read_back = 0

    def raw_decode(self, text, pos):
        return self.decoder.raw_decode(text, pos)

    def decode(self, text):
        self.read_back += 1
        return self.decoder.decode(text)


@pytest.fixture
def decoder(monkeypatch):
    counting = CountingDecoder(json_items.DECODER)
    monkeypatch.setattr(json_items, "DECODER", counting)
    return counting


@pytest.fixture
def proxy(fault_server):
    """A proxy whose list is whatever body the test sets; no queue, nothing by id."""
    fault_server.route("GET", "/mj/task/queue", Reply(body=b"[]"))
    fault_server.route("POST", "/mj/task/list-by-condition", Reply(body=b"[]"))
    source = Source.objects.create(name="listed", base_url=fault_server.url)

    def serve(body):
        if not isinstance(body, bytes):
            body = json.dumps(body, ensure_ascii=False, indent=1).encode()
        fault_server.route("GET", "/mj/task/list", Reply(body=body))
        return source

    return serve


def full_pass(source):
    run = sync_source(source, full=True)
    assert run.outcome == SyncRun.Outcome.OK, run.error
    return run


def counts(run):
    names = ["fetched", "created", "updated", "unchanged", "stale", "invalid", "gone"]
    return {name: getattr(run, name) for name in names}


def test_an_unchanged_list_is_decoded_once_only(proxy, decoder):
    source = proxy([record(f"17000000000000{i:02}") for i in range(30)])
    full_pass(source)
    decoder.read_back = 0

    run = full_pass(source)

    assert run.unchanged == 30
    assert decoder.read_back == 0


def test_a_changed_record_among_unchanged_ones_is_the_only_one_read_back(proxy, decoder):
    records = [record(f"17000000000000{i:02}") for i in range(30)]
    source = proxy(records)
    full_pass(source)
    records[17] = record(records[17]["id"], prompt="狗 changed")
    proxy(records)
    decoder.read_back = 0

    run = full_pass(source)

    assert (run.updated, run.unchanged) == (1, 29)
    assert decoder.read_back == 1
    assert json.loads(Task.objects.get(task_id=records[17]["id"]).raw)["prompt"] == "狗 changed"


def test_each_task_keeps_the_exact_bytes_of_its_item(proxy):
    body = (
        b'[ {"id":"1700000000000001", "status":"SUCCESS",  "prompt":"\xe7\x8c\xab\\u00e9"},\n'
        b'\t{"id": 1700000000000002,"status":"SUCCESS","seed":123456789012345678901234567890}]'
    )
    source = proxy(body)

    full_pass(source)

    raws = dict(Task.objects.values_list("task_id", "raw"))
    first, second = body[2 : body.index(b"},") + 1], body[body.index(b"\t") + 1 : -1]
    assert raws["1700000000000001"].encode() == first
    assert raws["1700000000000002"].encode() == second


def test_invalid_items_are_counted_and_stored_raw_on_every_pass(proxy):
    body = json.dumps(
        [record("1700000000000001"), 42, "x", [1], {"no": "id"}, record("1700000000000002")]
        + [record("1700000000000003", submitTime="yesterday")],
        ensure_ascii=False,
    ).encode()
    source = proxy(body)

    first, again = full_pass(source), full_pass(source)

    assert (first.invalid, first.created) == (5, 2)
    assert (again.invalid, again.unchanged) == (5, 2)
    raws = list(
        InvalidRecord.objects.filter(sync_run=again).order_by("pk").values_list("raw", flat=True)
    )
    assert raws[:4] == ["42", '"x"', "[1]", '{"no": "id"}']
    assert "yesterday" in raws[4]


def test_the_list_counts_and_stores_exactly_what_ingest_of_its_items_does(proxy, fault_server):
    stored = [record(f"17000000000000{i:02}") for i in range(6)]
    listed = [
        dict(stored[0]),  # unchanged
        record(stored[1]["id"], prompt="changed"),
        record(stored[2]["id"], status="IN_PROGRESS", progress="50%"),  # stale
        record(stored[3]["id"], status="IN_PROGRESS", progress="10%"),  # a duplicate behind…
        dict(stored[3]),  # …its stored, unchanged self
        record(stored[4]["id"], prompt="one"),  # a duplicate: the later of equals wins
        record(stored[4]["id"], prompt="two"),
        record("1700000000000099"),  # new
        7,
        record("1700000000000098", status=["SUCCESS"]),
    ]
    body = json.dumps(listed, ensure_ascii=False).encode()
    by_list = proxy(body)
    by_ingest = Source.objects.create(name="ingested", base_url=fault_server.url)
    for source in (by_list, by_ingest):
        ingest(source, stored)

    run = full_pass(by_list)
    expected, _ = ingest(by_ingest, list(iter_items(io.BytesIO(body))))

    assert counts(run) == dict(vars(expected), gone=1)  # stored[5] is not listed any more
    for task_id in {r["id"] for r in stored} | {"1700000000000099"}:
        got = Task.objects.get(source=by_list, task_id=task_id)
        want = Task.objects.get(source=by_ingest, task_id=task_id)
        assert (got.raw, got.status, got.prompt) == (want.raw, want.status, want.prompt)
    assert json.loads(Task.objects.get(source=by_list, task_id=stored[4]["id"]).raw)["prompt"] == (
        "two"
    )


def test_a_list_cut_off_halfway_changes_nothing(proxy, fault_server):
    records = [record(f"17000000000000{i:02}", prompt="x" * 500) for i in range(40)]
    source = proxy(records)
    full_pass(source)
    before = dict(Task.objects.values_list("task_id", "raw"))
    changed = [record(r["id"], prompt="changed") for r in records]
    body = json.dumps(changed).encode()
    fault_server.route("GET", "/mj/task/list", Reply(body=body[: len(body) // 2]))

    run = sync_source(source, full=True)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "broken JSON" in run.error
    assert dict(Task.objects.values_list("task_id", "raw")) == before
    assert run.invalid == 0 and not InvalidRecord.objects.exists()
