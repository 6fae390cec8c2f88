"""The Simulator: wires the store, the flavor, the HTTP server and the background threads
behind the small API the project's tests use."""

import copy
import hashlib
import random
import threading

from . import population
from .accounts import Accounts
from .activity import Activity
from .clock import RealClock
from .content import FAIL_REASONS
from .flavors import FLAVORS
from .lifecycle import WAITING, Plan, make_plan
from .links import Signer, snowflake
from .newapi import RelayTable
from .notifier import Notifier
from .payloads import GRID_ACTIONS, Context, build
from .server import Server
from .store import Store, sort_key

CHANNELS = 3  # Discord channels, one per simulated account
RECORD_SIZES = ("full", "small")


class Simulator:
    def __init__(
        self,
        flavor="novicezk",
        secret="s3cret",  # noqa: S107 - the simulator's documented demo secret
        tasks=100,
        seed=1,
        clock=None,
        image_ttl=86400,
        new_task_every=None,
        notify_hook=None,
        speed=1.0,
        notify_interval=0.5,
        newapi_envelope="new",
        admin_token="admin",  # noqa: S107 - trueai's own default when AdminToken is unset
        disable_account_after=None,
        exhaust_account_after=None,
        record_size="full",
    ):
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}, expected one of {sorted(FLAVORS)}")
        if speed <= 0:
            raise ValueError("speed must be positive")
        if record_size not in RECORD_SIZES:
            raise ValueError(f"unknown record size {record_size!r}, expected one of {RECORD_SIZES}")
        self.flavor = FLAVORS[flavor]
        # "small": records without buttons, about 1 KB, like older novicezk builds send
        # (bench/run.py --record-size small: the sync's cost per row, not per byte).
        self.small_records = record_size == "small"
        self.secret = secret or ""
        self.seed = seed
        self.clock = clock or RealClock()
        self.image_ttl = image_ttl
        self.speed = float(speed)
        self.notify_hook = notify_hook or None
        self.new_task_every = new_task_every or None
        self.url = None
        # None: the usual share of failures; 0.0 to 1.0: that share of new random tasks
        # fails (a failure-rate spike for the alert rules), changeable while it runs.
        self.failure_rate = None
        self.requests_log = []  # (method, path with query, headers): list.append is atomic
        self.signer = Signer(seed, image_ttl)
        self.store = Store()
        # The newapi flavor's admin list (its rows, their ids, its envelope and auth).
        self.relay_table = RelayTable(newapi_envelope)
        self._rng = random.Random(f"{seed}:live")
        self._server = None
        self._thread = None
        self._notifier = (
            Notifier(self, self.notify_hook, notify_interval) if self.notify_hook else None
        )
        self._activity = None
        self._ctx = Context(
            "http://127.0.0.1", self.signer, self.notify_hook, self._channels(), self._plan
        )
        # trueai's admin token, for its /mj/admin/accounts (accounts.py).
        self.admin_token = admin_token
        self.accounts = Accounts(
            self, self._ctx.channels, disable_account_after, exhaust_account_after
        )
        plans = population.history(
            tasks, self.clock.now_ms(), random.Random(seed), self.speed, self._new_plan
        )
        self.store.add_many((p.id, p) for p in plans)

    # --- running -------------------------------------------------------------------------

    def start(self, host="127.0.0.1", port=0):
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = Server((host, port), self)
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._ctx.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mj-sim-server",
            daemon=True,
        )
        self._thread.start()
        if self._notifier:
            now = self.clock.now_ms()
            running = [i.id for i in self.store.newest_first() if _unfinished(i, now)]
            self._notifier.start(running)
        if self.new_task_every:
            self._activity = Activity(self, self.new_task_every)
            self._activity.start()
        return self

    def stop(self):
        if self._activity:
            self._activity.stop()
        if self._notifier:
            self._notifier.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def notify_log(self):
        # (task id, "status:progress", HTTP status or error) for every push, as answered
        return self._notifier.log if self._notifier else []

    # --- changing what the proxy holds ---------------------------------------------------

    def submit(self, action="IMAGINE", prompt="猫猫", fail=False, parent=None, **fields):
        # fail: False, True (a realistic reason) or the failReason text itself.
        # fields: record keys to override in every state ("properties" is merged).
        now = self.clock.now_ms()
        if parent is None and action in ("UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN"):
            parent = self._newest_grid() or f"{now - 600_000:013d}{now % 1000:03d}"
        plan = self._new_plan(now, action, prompt, parent, fail, fields or None)
        self._add(plan)
        return plan.id

    def submit_random(self, at_ms):
        action, prompt, fail = population.random_spec(self._rng)
        if self.failure_rate is not None:
            failing = self._rng.random() < self.failure_rate
            fail = self._rng.choice(FAIL_REASONS) if failing else None
        parent = None
        if action not in ("IMAGINE", "DESCRIBE", "BLEND", "SHORTEN"):
            parent = self._newest_grid()
            if parent is None:
                action = "IMAGINE"
            else:
                prompt = self._plan(parent).prompt
        plan = self._new_plan(at_ms, action, prompt, parent, fail, None)
        self._add(plan)
        return plan.id

    def put(self, record):
        if "id" not in record:
            raise ValueError("a record needs an id")
        task_id = str(record["id"])
        self.store.add(task_id, copy.deepcopy(record))
        if self._notifier:
            self._notifier.watch(task_id)

    def forget(self, task_id):
        self.store.remove(str(task_id))

    def forget_all(self):
        self.store.clear()
        if self._notifier:
            self._notifier.reset()

    # --- reading, as the endpoints serve it ----------------------------------------------

    def record(self, task_id, now=None):
        item = self.store.get(str(task_id))
        if item is None:
            return None
        if isinstance(item, dict):
            return copy.deepcopy(item)
        return self.render(item, self.clock.now_ms() if now is None else now)

    def records(self):
        now = self.clock.now_ms()
        return [copy.deepcopy(self.render(i, now)) for i in self.list_items(capped=True)]

    def all_records(self):
        now = self.clock.now_ms()
        return [copy.deepcopy(self.render(i, now)) for i in self.store.newest_first()]

    def render(self, item, now, raw=False):
        """The JSON-ready dict for a store item; put() records are returned as stored.
        raw=True leaves a marker for the buttons (payloads.splice_buttons fills it in)."""
        if isinstance(item, dict):
            return item
        record, extras = build(item, now, self._ctx, raw)
        record = self.flavor.shape(record, extras)
        if self.small_records:
            record.pop("buttons", None)
        if item.fields:
            for key, value in item.fields.items():
                old = record.get(key)
                if key == "properties" and isinstance(old, dict) and isinstance(value, dict):
                    value = {**old, **value}
                record[key] = copy.deepcopy(value)
        return record

    def list_items(self, capped=True):
        items = self.store.newest_first()
        cap = self.flavor.list_cap
        return items[:cap] if capped and cap else items

    def queue_items(self):
        now = self.clock.now_ms()
        waiting = [i for i in self.store.newest_first() if _unfinished(i, now)]
        waiting.reverse()
        return waiting

    def items_by_ids(self, ids):
        found = {}
        for task_id in ids:
            item = self.store.get(task_id)
            if item is not None:
                found[task_id] = item
        return sorted(found.values(), key=sort_key, reverse=True)

    def is_planned(self, task_id):
        return isinstance(self.store.get(task_id), Plan)

    # --- internals -----------------------------------------------------------------------

    def _new_plan(self, sub, action, prompt, parent, fail, fields):
        task_id = self.store.new_id(sub)
        rs = int.from_bytes(
            hashlib.blake2b(f"{self.seed}:{task_id}".encode(), digest_size=8).digest(), "big"
        )
        if fail is True:
            fail = FAIL_REASONS[rs % len(FAIL_REASONS)]
        return make_plan(task_id, sub, rs, self.speed, action, prompt, parent, fail or None, fields)

    def _add(self, plan):
        self.store.add(plan.id, plan)
        if self._notifier:
            self._notifier.watch(plan.id)

    def _plan(self, task_id):
        item = self.store.get(task_id)
        return item if isinstance(item, Plan) else None

    def _newest_grid(self):
        # a parent for U/V/reroll: the newest finished grid, else the newest grid at all
        now, fallback = self.clock.now_ms(), None
        for item in self.store.newest_first():
            if isinstance(item, Plan) and item.action in GRID_ACTIONS and not item.fail:
                if item.t_finish <= now:
                    return item.id
                fallback = fallback or item.id
        return fallback

    def _channels(self):
        rng = random.Random(f"{self.seed}:channels")
        base = 1_672_531_200_000  # channels created in 2023
        return [
            snowflake(base + rng.randrange(300 * 86_400_000), rng.getrandbits(22))
            for _ in range(CHANNELS)
        ]


def _unfinished(item, now):
    if isinstance(item, Plan):
        return now < item.t_finish
    status = item.get("status")
    return isinstance(status, str) and status in WAITING
