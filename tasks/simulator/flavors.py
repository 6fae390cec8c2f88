"""How each kind of real proxy differs: auth, record shape, list caps, unrouted endpoints and
"not found" answers. As their sources have it: novicezk (and plus) list every task and answer
an unknown /fetch with an empty 200; trueai lists the newest 100, has no /queue (404) and
answers 204; relays (new-api) route no /list or /queue (200, an HTML page) and answer 400
task_no_found."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from .media import trueai_media
from .newapi import KEY_OWNER, user_of

JSON = "application/json;charset=UTF-8"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"

_CN = timezone(timedelta(hours=8))


def dumps(obj):
    # Compact like Jackson, UTF-8 rather than \u escapes.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class Novicezk:
    name = "novicezk"
    list_cap = None
    has_list = True
    has_queue = True
    has_list_by_ids = False
    auth_before_routing = True  # Spring's interceptor guards every /mj path
    serves_admin_list = False  # new-api's /api/mj/ (newapi.py)

    # sim.flavor is this object; it also compares equal to its name: sim.flavor == "relay"
    def __str__(self):
        return self.name

    def __eq__(self, other):
        return self.name == (other.name if isinstance(other, Novicezk) else other)

    def __hash__(self):
        return hash(self.name)

    def visible(self, task_id):
        """Whether the task endpoints show this task to the secret's holder."""
        return True

    def authorized(self, headers, secret):
        return headers.get("mj-api-secret") == secret

    def unauthorized(self):
        return 401, None, b""

    def fetch_not_found(self):
        # the controller returns null: 200 with no body at all
        return 200, None, b""

    def not_routed(self, path, now_ms):
        body = {
            "timestamp": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(),
            "status": 404,
            "error": "Not Found",
            "path": path,
        }
        return 404, JSON, dumps(body).encode()

    def shape(self, record, extras):
        record["buttons"] = extras["buttons"]
        return record


class TrueAI(Novicezk):
    name = "trueai"
    list_cap = 100
    has_queue = False
    has_list_by_ids = True

    def authorized(self, headers, secret):
        return secret in (headers.get("Authorization"), headers.get("Mj-Api-Secret"))

    def unauthorized(self):
        return 401, TEXT, b"Unauthorized"

    def fetch_not_found(self):
        return 204, None, b""

    def not_routed(self, path, now_ms):
        return 404, None, b""

    def shape(self, record, extras):
        finished = record["status"] in ("SUCCESS", "FAILURE", "CANCEL")
        image = record["imageUrl"]
        media = trueai_media(record, extras)  # grids; a VIDEO task's imageUrl is its MP4
        size = extras["size"]
        if record["startTime"]:
            record["properties"]["messageContent"] = _message_content(record, extras)
        record.update(
            {
                "buttons": extras["buttons"],
                "displays": _displays(record, extras),
                "isCompleted": finished,
                "mode": extras["mode"],
                "botType": extras["bot_type"],
                "realBotType": None,
                "thumbnailUrl": f"{image}width=256&height=256&" if image else None,
                "seed": extras["seed"],
                "useTime": extras["use_time"],
                "instanceId": extras["channel"],
                "subInstanceId": None,
                "parentId": extras["parent"],
                "nonce": record["properties"]["nonce"],
                "messageId": record["properties"].get("messageId"),
                "jobId": extras["job"],
                "progressMessageId": record["properties"].get("progressMessageId"),
                "interactionMetadataId": None,
                "isReplicate": False,
                "isPartner": False,
                "partnerTaskId": None,
                "partnerTaskInfo": None,
                "isOfficial": False,
                "officialTaskId": None,
                "remixAutoSubmit": False,
                "remixModaling": False,
                "remixModalMessageId": None,
                "accountFilter": {"instanceId": "", "modes": [], "remix": None},
                "userId": extras["user_id"],
                "requestMode": extras["request_mode"],
                # The account's default model when the prompt names none.
                "version": _version(record["promptEn"] or ""),
                "clientIp": "127.0.0.1",
                "isWhite": False,
                "width": size,
                "height": size,
                "promptFull": extras["final_prompt"],
                "quality": None,
            }
        )
        record.update(media)
        return record


class Relay(Novicezk):
    name = "relay"
    has_list = False
    has_queue = False
    auth_before_routing = False  # unrouted paths fall through to the web UI, no token needed

    def _token(self, secret):
        # MJ_API_SECRET may be configured as "Bearer sk-..." already
        return secret[7:] if secret.startswith("Bearer ") else secret

    def authorized(self, headers, secret):
        token = self._token(secret)
        return headers.get("Authorization") == f"Bearer {token}" or headers.get(
            "mj-api-secret"
        ) in (token, secret)

    def unauthorized(self):
        body = {"error": {"message": "无效的令牌", "type": "new_api_error"}}
        return 401, JSON, dumps(body).encode()

    def fetch_not_found(self):
        body = {"description": "task_no_found ", "type": "upstream_error", "code": 4}
        return 400, JSON, dumps(body).encode()

    def not_routed(self, path, now_ms):
        return 200, HTML, INDEX_HTML

    def shape(self, record, extras):
        # new-api's Go structs have no nulls: "" for strings, 0 for times, "100%" on failure
        out = {}
        for key, value in record.items():
            if key == "properties":
                value = {k: "" if v is None else v for k, v in value.items()}
            elif value is None:
                value = 0 if key.endswith("Time") else ""
            out[key] = value
        if out["status"] == "FAILURE":
            out["progress"] = "100%"
        out.update(
            {
                "customId": "",
                "botType": extras["bot_type"],
                "videoUrl": "",
                "videoUrls": None,
                "buttons": extras["buttons"],
                "maskBase64": "",
            }
        )
        return out


class NewApi(Relay):
    """A new-api relay with its admin list `/api/mj/` (newapi.py): its /mj/task/ endpoints
    answer the key's owner with that user's tasks only."""

    name = "newapi"
    serves_admin_list = True

    def visible(self, task_id):
        return user_of(task_id) == KEY_OWNER


INDEX_HTML = (
    b'<!doctype html><html lang="zh"><head><meta charset="utf-8" />'
    b'<meta name="viewport" content="width=device-width, initial-scale=1" />'
    b"<title>New API</title></head><body><noscript>You need to enable JavaScript to run "
    b'this app.</noscript><div id="root"></div></body></html>'
)

FLAVORS = {f.name: f for f in (Novicezk(), TrueAI(), Relay(), NewApi())}

_STATUS_CN = {
    "NOT_START": "未启动",
    "SUBMITTED": "已提交",
    "MODAL": "窗口等待",
    "IN_PROGRESS": "执行中",
    "SUCCESS": "成功",
    "FAILURE": "失败",
    "CANCEL": "已取消",
}


def _fmt(ms):
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, _CN).strftime("%Y-%m-%d %H:%M:%S")


_VERSION = re.compile(r"--(v|niji) ([0-9.]+)")
_MESSAGE_MODES = {"FAST": "fast", "RELAX": "relaxed", "TURBO": "turbo"}


def _version(prompt):
    # trueai's "v 7" / "niji 6": the prompt's, else the account's default
    found = _VERSION.findall(prompt)
    return " ".join(found[-1]) if found else "v 7"


def _message_content(record, extras):
    # The bot's message for the task, its speed at the end: "**prompt** - <@id> (relaxed)"
    mention = f"<@{record['properties']['nonce']}>"
    return f"**{record['promptEn']}** - {mention} ({_MESSAGE_MODES[extras['mode']]})"


def _displays(record, extras):
    return {
        "status": _STATUS_CN.get(record["status"], record["status"]),
        "mode": extras["mode"],
        "action": record["action"],
        "submitTime": _fmt(record["submitTime"]),
        "startTime": _fmt(record["startTime"]),
        "finishTime": _fmt(record["finishTime"]),
        "discordInstanceId": extras["channel"],
    }
