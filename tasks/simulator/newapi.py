"""The new-api relay's own table of the Midjourney tasks it relayed, and its admin list.

A row per task, in snake_case (FACTS-2.md §3.1): `id` is the relay's row id, given in
the order the relay first wrote the row (a row written late, with an older submit time,
gets a higher id, as a late commit does); `buttons`, `properties` and `video_urls` are
JSON text; times are epoch ms. `GET /api/mj/` pages the rows by id desc, filtered by
submit time and mj_id, in either envelope new-api versions have used:
"new" (`data.items`, `p` from 1, `page_size` up to 100) or "old" (a bare array, `p` from
0, 10 rows a page). Its auth is new-api's dashboard auth: the admin's access token in
Authorization (with or without "Bearer ") and New-Api-User, its user id.

The relay's /mj/task/ endpoints answer a user key with that user's tasks only: the
simulator's secret is the key of user KEY_OWNER, and each task belongs to one of USERS.

`before_page`, when set, is called with the query of each list request before it is
answered: tests add rows there, between two page fetches of one pass.
"""

import hashlib
import json
import threading
from urllib.parse import parse_qs, urlsplit

from .lifecycle import Plan

JSON = "application/json; charset=utf-8"  # gin's

USERS = (1, 2, 3)
KEY_OWNER = 1  # the user whose key is the simulator's secret
ADMIN_USER = "1"  # the admin's user id; its access token is the simulator's admin_token
OLD_PAGE_SIZE = 10  # ItemsPerPage before mid-2025
MAX_PAGE_SIZE = 100
ENVELOPES = ("new", "old")


def user_of(task_id):
    digest = hashlib.blake2b(str(task_id).encode(), digest_size=4, person=b"user").digest()
    return USERS[int.from_bytes(digest, "big") % len(USERS)]


def go_json(value):
    # Go's encoding/json, as gin writes it: compact, and <, > and & escaped.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class RelayTable:
    def __init__(self, envelope="new"):
        if envelope not in ENVELOPES:
            raise ValueError(f"unknown envelope {envelope!r}, expected one of {ENVELOPES}")
        self.envelope = envelope
        self.before_page = None
        self._row_ids = {}  # task id: row id
        self._numbered = None  # (the store's list, its rows numbered)
        self._lock = threading.Lock()

    # --- the admin list ------------------------------------------------------------------

    def answer(self, sim, headers, target):
        """(status, content type, body) of GET /api/mj/?..."""
        refused = self.refusal(headers, sim.admin_token)
        if refused is not None:
            return refused
        query = parse_qs(urlsplit(target).query)
        if self.before_page is not None:
            self.before_page(query)
        rows = self.rows(sim, query)
        if self.envelope == "old":
            p = max(0, number(query, "p", 0))
            page = rows[p * OLD_PAGE_SIZE : (p + 1) * OLD_PAGE_SIZE]
            data = [self.row(sim, item, row_id) for row_id, item in page]
        else:
            p = max(1, number(query, "p", 1))
            size = page_size(query)
            page = rows[(p - 1) * size : p * size] if size > 0 else rows
            data = {
                "page": p,
                "page_size": size,
                "total": len(rows),
                "items": [self.row(sim, item, row_id) for row_id, item in page],
            }
        return 200, JSON, go_json({"success": True, "message": "", "data": data}).encode()

    def refusal(self, headers, admin_token):
        user = headers.get("New-Api-User", "")
        if not user:
            return unauthorized("无权进行此操作，未提供 New-Api-User")
        token = headers.get("Authorization", "")
        token = token[7:] if token.startswith("Bearer ") else token
        if token != admin_token:
            if self.envelope == "old":
                # Versions of that time refused a bad access token with HTTP 200.
                body = {"success": False, "message": "无权进行此操作，access token 无效"}
                return 200, JSON, go_json(body).encode()
            return unauthorized("access token 无效", code="AUTH_UNAUTHORIZED")
        if user != ADMIN_USER:
            return unauthorized("无权进行此操作，New-Api-User 与登录用户不匹配")
        return None

    def rows(self, sim, query):
        """[(row id, store item)] the query selects, newest row first."""
        start = number(query, "start_timestamp", 0)
        end = number(query, "end_timestamp", 0)
        mj_id = (query.get("mj_id") or [""])[0]
        selected = []
        for row_id, item in self.numbered(sim):
            if mj_id and key_of(item) != mj_id:
                continue
            submitted = submit_ms(item)
            if (start and submitted < start) or (end and submitted > end):
                continue
            selected.append((row_id, item))
        return selected

    def numbered(self, sim):
        """Every task with its row id, newest row first; a task seen for the first time
        gets the next id (older submit times first)."""
        items = sim.store.newest_first()
        with self._lock:
            # The store hands out the same list until it changes: number it once.
            if self._numbered is not None and self._numbered[0] is items:
                return self._numbered[1]
            for item in reversed(items):
                task_id = key_of(item)
                if task_id not in self._row_ids:
                    self._row_ids[task_id] = len(self._row_ids) + 1
            numbered = [(self._row_ids[key_of(item)], item) for item in items]
            numbered.sort(key=lambda pair: pair[0], reverse=True)
            self._numbered = (items, numbered)
        return numbered

    def row(self, sim, item, row_id):
        """The relay's row of one task, from the task as its relay answers it."""
        task = sim.render(item, sim.clock.now_ms())
        task_id = str(task.get("id"))
        properties = task.get("properties") or {}
        # Thumbnails dropped, as new-api stores them.
        video_urls = [{"url": v.get("url")} for v in task.get("videoUrls") or []]
        digest = int.from_bytes(hashlib.blake2b(task_id.encode(), digest_size=4).digest(), "big")
        return {
            "id": row_id,
            "code": 1,
            "user_id": user_of(task_id),
            "action": task.get("action") or "",
            "mj_id": task_id,
            "prompt": task.get("prompt") or "",
            "prompt_en": task.get("promptEn") or "",
            "description": task.get("description") or "",
            "state": task.get("state") or "",
            "submit_time": task.get("submitTime") or 0,
            "start_time": task.get("startTime") or 0,
            "finish_time": task.get("finishTime") or 0,
            "image_url": task.get("imageUrl") or "",
            "video_url": task.get("videoUrl") or "",
            "video_urls": go_json(video_urls) if video_urls else "",
            "status": task.get("status") or "",
            "progress": task.get("progress") or "",
            "fail_reason": task.get("failReason") or "",
            "channel_id": 1 + digest % 4,
            "quota": 25000 if task.get("action") == "IMAGINE" else 10000,
            "buttons": go_json(task.get("buttons") or []),
            "properties": go_json(
                {
                    "finalPrompt": properties.get("finalPrompt") or "",
                    "finalZhPrompt": properties.get("finalZhPrompt") or "",
                }
            ),
        }


def unauthorized(message, code=None):
    body = {"success": False, "message": message}
    if code:
        body["code"] = code
    return 401, JSON, go_json(body).encode()


def key_of(item):
    return item.id if isinstance(item, Plan) else str(item.get("id"))


def submit_ms(item):
    if isinstance(item, Plan):
        overridden = (item.fields or {}).get("submitTime")
        return overridden if isinstance(overridden, int) else item.sub
    value = item.get("submitTime")
    return value if isinstance(value, int) else 0


def number(query, name, default):
    try:
        return int((query.get(name) or [""])[0])
    except ValueError:
        return default


def page_size(query):
    # 0 or absent: ps, then size, then 10; over 100: 100; negative: no limit (GORM).
    for name in ("page_size", "ps", "size"):
        size = number(query, name, 0)
        if size:
            return min(size, MAX_PAGE_SIZE)
    return OLD_PAGE_SIZE
