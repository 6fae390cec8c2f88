"""The proxy simulator, over real HTTP on 127.0.0.1. No database, no Django settings."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from tasks.simulator import ManualClock, Simulator
from tasks.simulator.lifecycle import PROGRESS

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"mj-api-secret": "s3cret"}
JSON_TYPE = "application/json;charset=UTF-8"
CORE_KEYS = [
    "id",
    "properties",
    "action",
    "status",
    "prompt",
    "promptEn",
    "description",
    "state",
    "submitTime",
    "startTime",
    "finishTime",
    "imageUrl",
    "progress",
    "failReason",
]
GONE = "This content is no longer available."


@pytest.fixture
def make_sim():
    sims = []

    def make(**kwargs):
        kwargs.setdefault("clock", ManualClock())
        kwargs.setdefault("tasks", 0)
        sim = Simulator(**kwargs).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def get(sim, path, headers=AUTH, **kwargs):
    return requests.get(sim.url + path, headers=headers, timeout=60, **kwargs)


def post(sim, path, body, headers=AUTH):
    return requests.post(sim.url + path, json=body, headers=headers, timeout=60)


def fetch(sim, task_id, headers=AUTH):
    return get(sim, f"/mj/task/{task_id}/fetch", headers)


def wait_until(predicate, timeout=30.0):
    # Generous: a loaded machine is slow, and a predicate that holds returns at once.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def submit_ms(task_id):
    return int(task_id[:13])


# --- novicezk ----------------------------------------------------------------------------


def test_novicezk_lists_every_task_newest_first(make_sim):
    sim = make_sim(tasks=30)
    r = get(sim, "/mj/task/list")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON_TYPE
    tasks = r.json()
    assert len(tasks) == 30
    keys = [(t["submitTime"], t["id"]) for t in tasks]
    assert keys == sorted(keys, reverse=True)
    for t in tasks:
        assert isinstance(t["id"], str) and len(t["id"]) == 16 and t["id"].isdigit()
        assert t["id"][:13] == str(t["submitTime"])
    assert tasks == sim.records() == sim.all_records()


def test_nearly_all_preloaded_tasks_are_finished_and_spread_over_30_days(make_sim):
    sim = make_sim(tasks=400)
    tasks = sim.records()
    now = sim.clock.now_ms()
    unfinished = [t for t in tasks if t["status"] not in ("SUCCESS", "FAILURE")]
    assert 1 <= len(unfinished) <= 5
    assert all(now - t["submitTime"] < 60_000 for t in unfinished)
    assert min(t["submitTime"] for t in tasks) > now - 30 * 86_400_000
    assert min(t["submitTime"] for t in tasks) < now - 20 * 86_400_000
    failures = sum(t["status"] == "FAILURE" for t in tasks)
    assert 15 < failures < 70
    assert {"IMAGINE", "UPSCALE", "VARIATION", "DESCRIBE"} <= {t["action"] for t in tasks}


def test_json_is_utf8_without_escapes(make_sim):
    sim = make_sim()
    task_id = sim.submit(prompt="黄昏时的灯塔")
    r = fetch(sim, task_id)
    assert "黄昏时的灯塔".encode() in r.content
    assert r.json()["promptEn"] == "A lighthouse at dusk"
    assert r.json()["description"] == "/imagine 黄昏时的灯塔"


def test_records_keep_novicezk_key_order(make_sim):
    sim = make_sim(tasks=20)
    for record in get(sim, "/mj/task/list").json():
        assert list(record)[:14] == CORE_KEYS
        assert list(record)[14:] == ["buttons"]


def test_novicezk_needs_the_exact_mj_api_secret(make_sim):
    sim = make_sim(tasks=3)
    assert get(sim, "/mj/task/list").status_code == 200
    for headers in ({"mj-api-secret": "wrong"}, {}, {"Authorization": "s3cret"}):
        r = get(sim, "/mj/task/list", headers)
        assert r.status_code == 401
        assert r.content == b""


@pytest.mark.parametrize("flavor", ["novicezk", "trueai", "relay"])
def test_no_secret_means_no_auth(make_sim, flavor):
    sim = make_sim(flavor=flavor, secret="")
    task_id = sim.submit()
    assert fetch(sim, task_id, headers={}).json()["id"] == task_id
    assert post(sim, "/mj/task/list-by-condition", {"ids": [task_id]}, {}).status_code == 200


def test_novicezk_fetch_of_an_unknown_id_is_an_empty_200(make_sim):
    sim = make_sim()
    task_id = sim.submit()
    r = fetch(sim, task_id)
    assert r.json() == sim.record(task_id)
    r = fetch(sim, "1700000000000123")
    assert r.status_code == 200
    assert r.content == b""


def test_novicezk_answers_unknown_paths_with_a_spring_404(make_sim):
    sim = make_sim()
    r = get(sim, "/mj/task/nothing")
    assert r.status_code == 404
    assert r.json()["path"] == "/mj/task/nothing"


@pytest.mark.parametrize("flavor", ["novicezk", "trueai", "relay"])
def test_list_by_condition_returns_known_ids_newest_first(make_sim, flavor):
    sim = make_sim(flavor=flavor)
    ids = []
    for _ in range(3):
        ids.append(sim.submit())
        sim.clock.advance(1)
    r = post(sim, "/mj/task/list-by-condition", {"ids": [ids[0], "404", ids[2], ids[1]]})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON_TYPE
    assert [t["id"] for t in r.json()] == [ids[2], ids[1], ids[0]]
    assert r.json()[0] == sim.record(ids[2])
    assert post(sim, "/mj/task/list-by-condition", {}).json() == []
    assert post(sim, "/mj/task/list-by-condition", {"ids": []}).json() == []


def test_queue_holds_waiting_and_running_tasks_oldest_first(make_sim):
    sim = make_sim()
    first = sim.submit()
    sim.clock.advance(20)
    second = sim.submit()
    sim.clock.advance(3)
    third = sim.submit()  # lifecycle windows: first is running, second waits in the queue
    sim.put({"id": "1600000000000001", "status": "MODAL", "submitTime": 1600000000000})
    sim.put({"id": "1600000000000002", "status": "SUCCESS", "submitTime": 1600000000001})
    queue = get(sim, "/mj/task/queue").json()
    assert [t["id"] for t in queue] == ["1600000000000001", first, second, third]
    assert [t["status"] for t in queue[1:]] == ["IN_PROGRESS", "SUBMITTED", "NOT_START"]
    sim.clock.advance(200)
    assert [t["id"] for t in get(sim, "/mj/task/queue").json()] == ["1600000000000001"]


# --- the lifecycle -------------------------------------------------------------------------


def test_a_task_moves_from_not_start_to_success_with_a_manual_clock(make_sim):
    sim = make_sim()
    task_id = sim.submit(prompt="猫猫")
    start = submit_ms(task_id)
    assert start == sim.clock.now_ms()

    t = fetch(sim, task_id).json()
    assert t["status"] == "NOT_START"
    assert t["progress"] is t["startTime"] is t["imageUrl"] is None

    sim.clock.set_ms(start + 3000)
    t = fetch(sim, task_id).json()
    assert (t["status"], t["progress"], t["startTime"]) == ("SUBMITTED", "0%", None)

    # walk on in half seconds: every progress step lasts longer than that
    seen, previews = [], set()
    while t["status"] in ("SUBMITTED", "IN_PROGRESS"):
        sim.clock.advance(0.5)
        t = fetch(sim, task_id).json()
        if sim.clock.now_ms() == start + 23_000:
            assert t["status"] == "IN_PROGRESS"
        if t["status"] != "IN_PROGRESS":
            continue
        assert start < t["startTime"] <= sim.clock.now_ms()
        seen.append(t["progress"])
        if t["progress"] != "0%":
            assert "_grid_0.webp?" in t["imageUrl"]
            previews.add(t["imageUrl"])
        else:
            assert t["imageUrl"] is None
    assert list(dict.fromkeys(seen)) == list(PROGRESS)
    assert len(previews) == len(PROGRESS) - 1

    preview = requests.get(sorted(previews)[0], timeout=10)
    assert preview.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(preview.content)).format == "WEBP"

    assert t["status"] == "SUCCESS" and t["progress"] == "100%"
    assert t["finishTime"] <= start + 83_000
    assert t["failReason"] is None
    assert ".png?ex=" in t["imageUrl"] and t["imageUrl"].endswith("&")
    assert t["properties"]["finalPrompt"] == "Cat"
    assert t["properties"]["messageHash"] in t["imageUrl"]
    labels = [b["label"] for b in t["buttons"]]
    assert labels == ["U1", "U2", "U3", "U4", "", "V1", "V2", "V3", "V4"]
    assert t["buttons"][4]["emoji"] == "🔄"
    assert set(t["buttons"][0]) == {"customId", "emoji", "label", "type", "style"}

    image = requests.get(t["imageUrl"], timeout=10)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(image.content))
    assert (picture.format, picture.size) == ("PNG", (512, 512))


def test_image_links_look_like_discord_attachments(make_sim):
    sim = make_sim()
    task_id = sim.submit()
    sim.clock.advance(90)
    url = sim.record(task_id)["imageUrl"]
    path, query = url[len(sim.url) :].split("?")
    _, attachments, channel, attachment, name = path.split("/")
    assert attachments == "attachments"
    assert 18 <= len(channel) <= 19 and channel.isdigit()
    assert 18 <= len(attachment) <= 19 and attachment.isdigit()
    assert name.endswith(".png") and name.count("_") >= 2
    params = dict(p.split("=") for p in query.rstrip("&").split("&"))
    assert int(params["ex"], 16) - int(params["is"], 16) == 86400
    assert int(params["is"], 16) == sim.record(task_id)["finishTime"] // 1000
    assert len(params["hm"]) == 64


def test_a_failing_task_ends_in_failure_without_an_image(make_sim):
    sim = make_sim()
    task_id = sim.submit(fail="Invalid Form Body")
    sim.clock.advance(90)
    t = fetch(sim, task_id).json()
    assert t["status"] == "FAILURE"
    assert t["progress"] == ""
    assert t["failReason"] == "Invalid Form Body"
    assert t["imageUrl"] is None
    assert t["finishTime"] - t["startTime"] < 1000
    assert t["buttons"] == []


def test_fail_true_picks_a_realistic_reason(make_sim):
    sim = make_sim()
    task_id = sim.submit(fail=True)
    sim.clock.advance(90)
    reason = sim.record(task_id)["failReason"]
    known = ("Invalid Form Body", "任务超时", "Banned prompt detected")
    assert reason in known or reason.startswith("[")


def test_speed_divides_every_duration(make_sim):
    sim = make_sim(speed=10)
    task_id = sim.submit()
    sim.clock.advance(8.4)
    assert sim.record(task_id)["status"] == "SUCCESS"


def test_actions_reference_their_parent(make_sim):
    sim = make_sim()
    parent = sim.submit()
    sim.clock.advance(90)
    child = sim.submit(action="UPSCALE", parent=parent)
    sim.clock.advance(90)
    t = sim.record(child)
    assert t["description"].startswith(f"/up {parent} U")
    assert t["properties"]["referencedMessageId"] == sim.record(parent)["properties"]["messageId"]
    assert "Vary (Strong)" in [b["label"] for b in t["buttons"]]


def test_describe_and_shorten_give_their_text_results(make_sim):
    sim = make_sim()
    describe = sim.submit(action="DESCRIBE")
    shorten = sim.submit(action="SHORTEN", prompt="a red fox in a snowy forest")
    assert sim.record(describe)["description"] == f"/describe {describe}.png"
    sim.clock.advance(90)
    final = sim.record(describe)["properties"]["finalPrompt"]
    assert [line[:3] for line in final.split("\n\n")] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    analysis = sim.record(shorten)["properties"]["finalPrompt"]
    assert "**IMPORTANT TOKENS**" in analysis
    assert sim.record(shorten)["imageUrl"] is None


def test_submit_fields_override_the_record(make_sim):
    sim = make_sim()
    task_id = sim.submit(state="order-7", properties={"notifyHook": "http://x/hook"}, extra=1)
    t = sim.record(task_id)
    assert t["state"] == "order-7"
    assert t["properties"]["notifyHook"] == "http://x/hook"
    assert t["properties"]["nonce"]
    assert list(t)[-1] == "extra"


def test_ids_are_unique_within_one_millisecond(make_sim):
    sim = make_sim()
    ids = [sim.submit() for _ in range(50)]
    assert len(set(ids)) == 50
    assert {i[:13] for i in ids} == {str(sim.clock.now_ms())}


def test_records_are_deterministic_for_a_seed():
    start = 1_750_000_000_000
    one = Simulator(tasks=50, seed=7, clock=ManualClock(start))
    two = Simulator(tasks=50, seed=7, clock=ManualClock(start))
    other = Simulator(tasks=50, seed=8, clock=ManualClock(start))
    assert one.all_records() == two.all_records()
    assert [t["id"] for t in one.all_records()] != [t["id"] for t in other.all_records()]


def test_list_stream_equals_the_records(make_sim):
    # the stream splices pre-encoded buttons into the JSON: it must match record() exactly
    sim = make_sim(tasks=600)
    sim.submit()
    streamed = get(sim, "/mj/task/list").json()
    assert streamed == sim.records()
    assert [list(t) for t in streamed] == [list(t) for t in sim.records()]


# --- images ------------------------------------------------------------------------------


def test_an_image_link_dies_at_ex(make_sim):
    sim = make_sim(image_ttl=600)
    task_id = sim.submit()
    sim.clock.advance(90)
    url = sim.record(task_id)["imageUrl"]
    assert requests.get(url, timeout=10).status_code == 200  # no auth, like a CDN
    sim.clock.advance(600)
    r = requests.get(url, timeout=10)
    assert r.status_code == 404
    assert r.text == GONE


def test_a_tampered_or_missing_signature_is_refused(make_sim):
    sim = make_sim()
    task_id = sim.submit()
    sim.clock.advance(90)
    url = sim.record(task_id)["imageUrl"]
    head, hm = url.rstrip("&").split("hm=")
    tampered = head + "hm=" + ("0" if hm[0] != "0" else "1") + hm[1:] + "&"
    assert requests.get(tampered, timeout=10).text == GONE
    assert requests.get(url.split("?")[0], timeout=10).status_code == 404


def test_image_width_resizes_like_discord_media(make_sim):
    sim = make_sim()
    task_id = sim.submit()
    sim.clock.advance(90)
    r = requests.get(sim.record(task_id)["imageUrl"] + "width=128&height=128", timeout=10)
    assert Image.open(io.BytesIO(r.content)).size == (128, 128)


# --- put / forget ------------------------------------------------------------------------


def test_put_serves_a_record_verbatim_everywhere(make_sim):
    sim = make_sim(tasks=5)
    odd = {"status": "IN_PROGRESS", "id": "0123456789012345", "zzz": None, "progress": "Stopped"}
    odd["submitTime"] = sim.clock.now_ms()
    sim.put(odd)
    r = fetch(sim, odd["id"])
    assert r.content.decode() == json.dumps(odd, ensure_ascii=False, separators=(",", ":"))
    assert list(r.json()) == list(odd)
    assert get(sim, "/mj/task/list").json()[0] == odd
    assert odd in get(sim, "/mj/task/queue").json()
    assert post(sim, "/mj/task/list-by-condition", {"ids": [odd["id"]]}).json() == [odd]
    assert sim.record(odd["id"]) == odd


def test_put_replaces_a_planned_task(make_sim):
    sim = make_sim()
    task_id = sim.submit()
    stale = {"id": task_id, "status": "SUBMITTED", "progress": "0%"}
    sim.put(stale)
    sim.clock.advance(90)
    assert fetch(sim, task_id).json() == stale


def test_forget_and_forget_all(make_sim):
    sim = make_sim(tasks=10)
    task_id = sim.submit()
    sim.forget(task_id)
    assert fetch(sim, task_id).content == b""
    assert sim.record(task_id) is None
    assert len(get(sim, "/mj/task/list").json()) == 10
    sim.forget_all()
    assert get(sim, "/mj/task/list").json() == []
    assert sim.all_records() == []


# --- trueai ------------------------------------------------------------------------------


def test_trueai_lists_only_the_newest_100(make_sim):
    sim = make_sim(flavor="trueai", tasks=150)
    tasks = get(sim, "/mj/task/list").json()
    everything = sim.all_records()
    assert len(tasks) == 100 and len(everything) == 150
    assert [t["id"] for t in tasks] == [t["id"] for t in everything[:100]]
    assert len(sim.records()) == 100


def test_trueai_accepts_a_raw_authorization_or_mj_api_secret(make_sim):
    sim = make_sim(flavor="trueai", tasks=1)
    assert get(sim, "/mj/task/list", {"Authorization": "s3cret"}).status_code == 200
    assert get(sim, "/mj/task/list", {"Mj-Api-Secret": "s3cret"}).status_code == 200
    for headers in ({"Authorization": "Bearer s3cret"}, {"Authorization": "nope"}, {}):
        r = get(sim, "/mj/task/list", headers)
        assert r.status_code == 401
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.text


def test_trueai_has_no_queue_and_answers_204_for_an_unknown_id(make_sim):
    sim = make_sim(flavor="trueai")
    task_id = sim.submit()
    assert get(sim, "/mj/task/queue").status_code == 404
    r = fetch(sim, "1700000000000123")
    assert (r.status_code, r.content) == (204, b"")
    r = post(sim, "/mj/task/list-by-ids", {"ids": [task_id, "1"]})
    assert [t["id"] for t in r.json()] == [task_id]


def test_trueai_records_carry_many_extra_fields_after_the_core_ones(make_sim):
    sim = make_sim(flavor="trueai")
    task_id = sim.submit()
    sim.clock.advance(90)
    t = fetch(sim, task_id).json()
    assert list(t)[:14] == CORE_KEYS
    extras = list(t)[14:]
    assert len(extras) >= 25
    assert {"displays", "isCompleted", "mode", "botType", "thumbnailUrl"} <= set(extras)
    assert {"imageUrls", "videoUrl", "seed", "useTime"} <= set(extras)
    assert {"instanceId", "parentId", "buttons"} <= set(extras)
    assert t["isCompleted"] is True
    # A finished grid: its four pictures, each with a _640_N.webp thumbnail (FACTS-2 §2.6).
    assert len(t["imageUrls"]) == 4
    paths = [urlsplit(p["thumbnail"]).path for p in t["imageUrls"]]
    assert all(path.endswith(f"_0_{i}_640_N.webp") for i, path in enumerate(paths)), paths
    thumb = requests.get(t["thumbnailUrl"], timeout=10)
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 256)


# --- relay -------------------------------------------------------------------------------


def test_relay_answers_list_and_queue_with_an_html_page(make_sim):
    sim = make_sim(flavor="relay", tasks=5)
    for path in ("/mj/task/list", "/mj/task/queue"):
        for headers in (AUTH, {}):
            r = get(sim, path, headers)
            assert r.status_code == 200
            assert r.headers["Content-Type"].startswith("text/html")
            assert r.text.lstrip().lower().startswith("<!doctype html")


def test_relay_writes_empty_strings_and_zeros_instead_of_null(make_sim):
    sim = make_sim(flavor="relay")
    task_id = sim.submit()
    failing = sim.submit(fail="任务超时")
    t = fetch(sim, task_id).json()
    assert list(t)[:14] == CORE_KEYS
    assert t["startTime"] == 0 and t["finishTime"] == 0
    assert t["imageUrl"] == "" and t["failReason"] == "" and t["progress"] == ""
    assert None not in [t[key] for key in CORE_KEYS]
    assert t["properties"]["notifyHook"] == ""
    sim.clock.advance(23)  # certainly running by now
    t = fetch(sim, task_id).json()
    assert t["status"] == "IN_PROGRESS" and t["finishTime"] == 0 and t["startTime"] > 0
    sim.clock.advance(67)
    t = fetch(sim, failing).json()
    assert (t["status"], t["failReason"], t["imageUrl"]) == ("FAILURE", "任务超时", "")
    assert t["progress"] == "100%"


def test_relay_accepts_a_bearer_token_or_mj_api_secret(make_sim):
    sim = make_sim(flavor="relay")
    task_id = sim.submit()
    assert fetch(sim, task_id, {"Authorization": "Bearer s3cret"}).status_code == 200
    assert fetch(sim, task_id, {"mj-api-secret": "s3cret"}).status_code == 200
    for headers in ({"Authorization": "s3cret"}, {"Authorization": "Bearer nope"}, {}):
        r = fetch(sim, task_id, headers)
        assert r.status_code == 401
        assert "error" in r.json()


def test_relay_fetch_of_an_unknown_id_is_task_no_found(make_sim):
    sim = make_sim(flavor="relay")
    r = fetch(sim, "1700000000000123")
    assert r.status_code == 400
    assert r.json() == {"description": "task_no_found ", "type": "upstream_error", "code": 4}


# --- the server --------------------------------------------------------------------------


def test_requests_log_keeps_method_path_and_headers(make_sim):
    sim = make_sim()
    get(sim, "/mj/task/list?x=1", {"mj-api-secret": "s3cret", "X-Trace": "t1"})
    post(sim, "/mj/task/list-by-condition", {"ids": []})
    (m1, p1, h1), (m2, p2, _) = sim.requests_log
    assert (m1, p1) == ("GET", "/mj/task/list?x=1")
    assert (h1["X-Trace"], h1["mj-api-secret"]) == ("t1", "s3cret")
    assert (m2, p2) == ("POST", "/mj/task/list-by-condition")


def test_keep_alive_connections_are_reused_and_closed_on_stop():
    sim = Simulator(tasks=3, clock=ManualClock()).start()
    session = requests.Session()
    assert session.get(sim.url + "/mj/task/list", headers=AUTH, timeout=10).status_code == 200
    assert session.get(sim.url + "/mj/task/list", headers=AUTH, timeout=10).status_code == 200
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(sim.url + "/mj/task/list", headers=AUTH, timeout=10)


def test_it_works_as_a_context_manager():
    with Simulator(tasks=2, clock=ManualClock()).start() as sim:
        assert len(get(sim, "/mj/task/list").json()) == 2
    with pytest.raises(requests.ConnectionError):
        get(sim, "/mj/task/list")


def test_new_task_every_submits_tasks_as_the_clock_moves(make_sim):
    sim = make_sim(new_task_every=10)
    sim.clock.advance(35)
    assert wait_until(lambda: len(sim.all_records()) == 3)
    times = sorted(t["submitTime"] for t in sim.all_records())
    assert times[1] - times[0] == 10_000


# --- notify-hook -------------------------------------------------------------------------


class Receiver:
    """A tiny notify-hook endpoint collecting (headers, JSON body) of every POST."""

    def __init__(self, status=200):
        self.posts = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mj/t0k/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keys(self, task_id):
        return [f"{b['status']}:{b['progress']}" for _, b in self.posts if b["id"] == task_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_notify_hook_pushes_every_change_in_order(make_sim, receiver):
    sim = make_sim(notify_hook=receiver.url, notify_interval=0.02)
    task_id = sim.submit()
    expected = []
    for _ in range(50):
        t = sim.record(task_id)
        key = f"{t['status']}:{t['progress']}"
        if not expected or expected[-1] != key:
            expected.append(key)
            assert wait_until(lambda key=key: key in receiver.keys(task_id)), key
        if t["status"] == "SUCCESS":
            break
        sim.clock.advance(2)
    assert receiver.keys(task_id) == expected
    assert expected[0] == "NOT_START:None" and expected[-1] == "SUCCESS:100%"
    headers, body = receiver.posts[-1]
    assert headers["Content-Type"] == "application/json"
    assert "mj-api-secret" not in {h.lower() for h in headers}
    assert body == sim.record(task_id)


def answered(sim, task_id, key):
    """Whether the push of task_id's key ("STATUS:progress") was sent and answered."""
    return any(entry[:2] == (task_id, key) for entry in sim.notify_log)


def test_notify_hook_drops_a_change_older_than_the_last_one_sent(make_sim, receiver):
    sim = make_sim(notify_hook=receiver.url, notify_interval=0.02)
    task_id = sim.submit()
    sim.clock.advance(90)
    assert wait_until(lambda: "SUCCESS:100%" in receiver.keys(task_id))
    sim.put({"id": task_id, "status": "IN_PROGRESS", "progress": "46%"})
    # The notifier has looked at the put record since: a task submitted after it was
    # pushed, and then pushed again when it moved on, by a later look than the first.
    other = sim.submit()
    assert wait_until(lambda: answered(sim, other, "NOT_START:null"))
    sim.clock.advance(3.5)  # another NOT_START -> SUBMITTED, the put record stays as it is
    assert wait_until(lambda: answered(sim, other, "SUBMITTED:0%"))
    assert receiver.keys(other) == ["NOT_START:None", "SUBMITTED:0%"]
    assert "IN_PROGRESS:46%" not in receiver.keys(task_id)
    assert [key for tid, key, _ in sim.notify_log if tid == task_id][-1] == "SUCCESS:100%"


def test_preloaded_tasks_are_not_pushed_at_start(make_sim, receiver):
    sim = make_sim(tasks=50, notify_hook=receiver.url, notify_interval=0.02)
    # The notifier runs and has looked at every task it watches, twice: a task submitted
    # after the start was pushed, then changed (the clock stands still) and pushed again.
    marker = sim.submit()
    assert wait_until(lambda: answered(sim, marker, "NOT_START:null"))
    sim.put({"id": marker, "status": "FAILURE", "progress": "0%", "failReason": "marker"})
    assert wait_until(lambda: answered(sim, marker, "FAILURE:0%"))
    assert [body["id"] for _, body in receiver.posts] == [marker, marker]
    receiver.posts.clear()
    sim.clock.advance(120)  # the few running ones finish: those changes are pushed
    assert wait_until(lambda: len(receiver.posts) >= 1)
    assert all(b["status"] in ("SUCCESS", "FAILURE") for _, b in receiver.posts)
    assert marker not in {b["id"] for _, b in receiver.posts}  # finished: pushed no more


def test_a_failed_push_is_logged_and_not_retried(make_sim):
    failing = Receiver(status=500)
    try:
        sim = make_sim(notify_hook=failing.url, notify_interval=0.02)
        task_id = sim.submit()
        assert wait_until(lambda: sim.notify_log)
        assert sim.notify_log == [(task_id, "NOT_START:null", 500)]
        sim.clock.advance(3.5)  # the task moves on: that change is pushed (and refused)
        assert wait_until(lambda: answered(sim, task_id, "SUBMITTED:0%"))
        # The notifier has looked at every task twice since: a task submitted after that
        # was pushed, then changed and pushed again. Neither refused push was sent again.
        marker = sim.submit()
        assert wait_until(lambda: answered(sim, marker, "NOT_START:null"))
        sim.put({"id": marker, "status": "FAILURE", "progress": "0%", "failReason": "marker"})
        assert wait_until(lambda: answered(sim, marker, "FAILURE:0%"))
        assert [entry for entry in sim.notify_log if entry[0] == task_id] == [
            (task_id, "NOT_START:null", 500),
            (task_id, "SUBMITTED:0%", 500),
        ]
        assert failing.keys(task_id) == ["NOT_START:None", "SUBMITTED:0%"]
    finally:
        failing.close()


# --- the command -------------------------------------------------------------------------

COMMAND = """
import django
from django.conf import settings
settings.configure()
django.setup()
from tasks.management.commands.mj_simulator import Command
Command().run_from_argv(["manage.py", "mj_simulator", "--port", "0", "--tasks", "20",
                         "--flavor", "trueai", "--secret", "abc", "--new-task-every", "0"])
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_until_a_signal(sig):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", COMMAND], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert "trueai" in line
        url = line.split(" on ")[1].split()[0]
        r = requests.get(url + "/mj/task/list", headers={"Authorization": "abc"}, timeout=10)
        assert len(r.json()) == 20
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# --- size --------------------------------------------------------------------------------


@pytest.mark.slow  # ~5 s of serving, but the test's own parse of 200 MB shares the GIL
def test_a_hundred_thousand_tasks_preload_and_list_whole():
    # How fast is a figure, not a test: `make bench` (bench/run.py) prints the simulator's
    # start and the list's transfer for 100,000 tasks.
    with Simulator(tasks=100_000, clock=ManualClock()).start() as sim:
        r = get(sim, "/mj/task/list", stream=True)
        assert r.status_code == 200
        tasks = json.loads(b"".join(r.iter_content(1 << 20)))
        newest = sim.record(tasks[0]["id"])
    assert len(tasks) == 100_000
    assert len({t["id"] for t in tasks}) == 100_000
    keys = [(t["submitTime"], t["id"]) for t in tasks]
    assert keys == sorted(keys, reverse=True)
    assert tasks[0] == newest
