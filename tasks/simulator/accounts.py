"""The simulated Discord accounts: one per channel the tasks run on, with credentials in
them as the real proxies send them (so tests can prove mjsite never keeps one), and their
trouble: disabled with a reason, fast time used up, on request or on a schedule.

- novicezk: GET /mj/account/list (a bare array) and GET /mj/account/{id}/fetch, behind the
  task secret; its fields only (userToken in clear), a disabled account's reason in
  properties.disabledReason as the plus edition keeps it;
- trueai: POST /mj/admin/accounts with its paging body, behind the admin token (401 text
  "账号无权限" without it), nothing masked for the admin, as trueai v11 answers;
- the control endpoints the tests call, no auth: POST /_sim/accounts/<channel>/disable
  (JSON body {"reason": ...} optional), /enable, /exhaust, /refill.
"""

import hashlib
import json
import re
import threading
import uuid

from .flavors import JSON, TEXT, dumps

CONTROL = re.compile(r"^/_sim/accounts/([^/]+)/(disable|enable|exhaust|refill)$")
FETCH = re.compile(r"^/mj/account/([^/]+)/fetch$")
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36"
)
DEFAULT_REASON = "账号被封禁 (Discord: account disabled)"


class Account:
    def __init__(self, index, channel, seed):
        self.index, self.channel = index, channel

        def made(what):
            digest = hashlib.sha256(f"{seed}:{channel}:{what}".encode()).hexdigest()
            return f"sim-{what}-{digest[:24]}"

        self.guild = str(int(channel) - 1000 - index)
        self.guid = str(uuid.UUID(hashlib.md5(f"{seed}:{channel}".encode()).hexdigest()))  # noqa: S324 - an id, not a hash for security
        # Every credential a real account record carries, each value unique and greppable.
        self.credentials = {
            "userToken": made("userToken"),
            "botToken": made("botToken"),
            "cookie": f"__Secure-next-auth.session-token={made('cookie')}",
            "loginAccount": f"{made('loginAccount')}@example.invalid",
            "loginPassword": made("loginPassword"),
            "login2fa": made("login2fa"),
            "cfUrl": f"https://discord.example.invalid/captcha/{made('cfUrl')}",
            "cfHashUrl": f"https://discord.example.invalid/captcha/{made('cfHashUrl')}",
            "permanentInvitationLink": f"https://discord.gg/{made('invitation')}",
            "subChannel": f"https://discord.com/channels/{self.guild}/{made('subChannel')}",
            "nestedAuth": made("nestedAuth"),
        }
        self.enabled, self.reason, self.exhausted = True, "", False


class Accounts:
    def __init__(self, sim, channels, disable_after=None, exhaust_after=None):
        self.sim = sim
        self.list = [Account(i, ch, sim.seed) for i, ch in enumerate(channels)]
        self.by_channel = {a.channel: a for a in self.list}
        self._lock = threading.Lock()
        # Trouble on a schedule, on the simulator's clock: the first account is disabled,
        # the second runs out of fast time, so many seconds after the start.
        start = sim.clock.now_ms()
        self.disable_at = None if disable_after is None else start + disable_after * 1000
        self.exhaust_at = None if exhaust_after is None else start + exhaust_after * 1000

    def credential_values(self):
        return [value for a in self.list for value in a.credentials.values()]

    # --- trouble -------------------------------------------------------------------------

    def disable(self, channel, reason=DEFAULT_REASON):
        with self._lock:
            account = self.by_channel[channel]
            account.enabled, account.reason = False, reason

    def enable(self, channel):
        with self._lock:
            account = self.by_channel[channel]
            account.enabled, account.reason = True, ""

    def exhaust(self, channel, exhausted=True):
        with self._lock:
            self.by_channel[channel].exhausted = exhausted

    def _scheduled(self, now):
        if self.disable_at is not None and now >= self.disable_at and self.list:
            self.disable(self.list[0].channel, "scheduled: " + DEFAULT_REASON)
            self.disable_at = None
        if self.exhaust_at is not None and now >= self.exhaust_at and len(self.list) > 1:
            self.exhaust(self.list[1].channel)
            self.exhaust_at = None

    # --- HTTP ----------------------------------------------------------------------------

    def control(self, method, path, body):
        m = CONTROL.match(path)
        if method != "POST" or not m or m.group(1) not in self.by_channel:
            return 404, TEXT, b"no such account or action"
        channel, action = m.groups()
        if action == "disable":
            try:
                reason = json.loads(body or b"{}").get("reason") or DEFAULT_REASON
            except (ValueError, AttributeError):
                reason = DEFAULT_REASON
            self.disable(channel, str(reason))
        elif action == "enable":
            self.enable(channel)
        else:
            self.exhaust(channel, action == "exhaust")
        return 200, JSON, b'{"ok":true}'

    def answer(self, method, path, headers, body):
        """(status, content type, body) for an account endpoint of this flavor; None when
        the flavor has no such route (the server answers as for any unrouted path)."""
        flavor, now = self.sim.flavor, self.sim.clock.now_ms()
        self._scheduled(now)
        if flavor.name == "novicezk" and method == "GET":
            if path == "/mj/account/list":
                return 200, JSON, dumps([self.novicezk(a) for a in self.list]).encode()
            m = FETCH.match(path)
            if m:
                account = self.by_channel.get(m.group(1))
                if account is None:
                    return 200, None, b""  # the controller returns null: an empty 200
                return 200, JSON, dumps(self.novicezk(account)).encode()
        if flavor.name == "trueai" and method == "POST" and path == "/mj/admin/accounts":
            token = headers.get("Authorization") or headers.get("Mj-Api-Secret")
            if token != self.sim.admin_token:
                return 401, TEXT, "账号无权限".encode()
            return 200, JSON, dumps(self.trueai_page(body)).encode()
        return None

    def running_and_queued(self):
        running, queued = {}, {}
        now = self.sim.clock.now_ms()
        for item in self.sim.queue_items():
            record = self.sim.render(item, now)
            props = record.get("properties") or {}
            channel = props.get("discordInstanceId")
            counts = running if record.get("status") == "IN_PROGRESS" else queued
            counts[channel] = counts.get(channel, 0) + 1
        return running, queued

    def novicezk(self, a):
        props = {"disabledReason": a.reason} if a.reason else {}
        return {
            "id": a.channel,
            "properties": props,
            "guildId": a.guild,
            "channelId": a.channel,
            "userToken": a.credentials["userToken"],
            "userAgent": USER_AGENT,
            "enable": a.enabled,
            "coreSize": 3,
            "queueSize": 10,
            "timeoutMinutes": 5,
        }

    def trueai_page(self, body):
        try:
            request = json.loads(body or b"{}")
            paging = request.get("pagination") or {}
            current = max(1, int(paging.get("current") or 1))
            size = min(100, max(1, int(paging.get("pageSize") or 10)))
        except (ValueError, AttributeError, TypeError):
            current, size = 1, 10
        running, queued = self.running_and_queued()
        chosen = self.list[(current - 1) * size : current * size]
        total = len(self.list)
        return {
            "list": [self.trueai(a, running, queued) for a in chosen],
            "pagination": {
                "current": current,
                "pageSize": size,
                "total": total,
                "pageCount": -(-total // size),
            },
        }

    def trueai(self, a, running, queued):
        c = a.credentials
        fast = "0.00/15.0 hours (0.00%)" if a.exhausted else "11.25/15.0 hours (75.00%)"
        return {
            "id": a.guid,
            "channelId": a.channel,
            "guildId": a.guild,
            "privateChannelId": None,
            "nijiBotChannelId": None,
            "subChannels": [c["subChannel"]],
            "subChannelValues": {c["subChannel"].rsplit("/", 1)[1]: a.guild},
            "userToken": c["userToken"],
            "botToken": c["botToken"],
            "cookie": c["cookie"],
            "loginAccount": c["loginAccount"],
            "loginPassword": c["loginPassword"],
            "login2fa": c["login2fa"],
            "isAutoLogining": False,
            "cfUrl": c["cfUrl"],
            "cfHashUrl": c["cfHashUrl"],
            "permanentInvitationLink": c["permanentInvitationLink"],
            "userAgent": USER_AGENT,
            "enable": a.enabled,
            "enableMj": True,
            "enableNiji": True,
            "lock": False,
            "fastExhausted": a.exhausted,
            "disabledReason": a.reason or None,
            "running": a.enabled,
            "runningCount": running.get(a.channel, 0),
            "queueCount": queued.get(a.channel, 0),
            "coreSize": 3,
            "queueSize": 10,
            "relaxCoreSize": 3,
            "relaxQueueSize": 10,
            "maxQueueSize": 100,
            "timeoutMinutes": 5,
            "dayDrawLimit": 200,
            "dayRelaxDrawLimit": -1,
            "dayFastCount": 3 * (a.index + 1),
            "dayRelaxCount": a.index,
            "todayFastDrawCount": 3 * (a.index + 1),
            "todayRelaxDrawCount": a.index,
            "todayTurboDrawCount": 0,
            "fastTimeRemaining": fast,
            "relaxTimeRemaining": "N/A",
            "mode": None,
            "allowModes": ["FAST", "RELAX"],
            "remark": f"sim account {a.index + 1}",
            "sponsor": "",
            "weight": 1,
            "sort": a.index,
            "dateCreated": "2025-01-01T08:00:00+08:00",
            "displays": {"subscribePlan": "Standard", "billedWay": "Monthly", "mode": "Fast"},
            # Discord's /info, as trueai keeps it; a credential nested in it must go too.
            "properties": {
                "Subscription": "Standard (Active monthly, renews next on 2026-01-01)",
                "Job Mode": "Fast",
                "Fast Time Remaining": fast,
                "session": {"Authorization": c["nestedAuth"], "note": "kept"},
            },
        }
