"""A new-api relay's task row, in the proxy's camelCase task shape.

new-api keeps every Midjourney task it relayed as a row of its own (`GET /api/mj/`, rows
in snake_case, FACTS-2.md §3.1). Its relay endpoints turn a row into the proxy's task
shape (its MidjourneyDto); `task_shape` does the same, so the record rules, the derived
columns and the mirror API see the shape every other proxy sends, while `Task.raw` keeps
the row itself, exactly as the relay sent it.

Pure standard library, like records.py. Never raises: a value that is not a row is
returned as it is (the sync then says why it is invalid), a field of an odd type is
passed on as it came (the record rules judge it), and a `buttons`, `properties` or
`video_urls` text that is not the JSON it should hold becomes null, as new-api's own
relay answers it (Go's Unmarshal fails, the field stays nil); the row in `raw` keeps it.
"""

import json

# Row field -> task field, in the order of new-api's MidjourneyDto.
TEXT_FIELDS = (
    ("action", "action"),
    ("prompt", "prompt"),
    ("prompt_en", "promptEn"),
    ("description", "description"),
    ("state", "state"),
    ("submit_time", "submitTime"),
    ("start_time", "startTime"),
    ("finish_time", "finishTime"),
    ("image_url", "imageUrl"),
    ("video_url", "videoUrl"),
)
STATUS_FIELDS = (("status", "status"), ("progress", "progress"), ("fail_reason", "failReason"))


def is_row(value):
    """Whether a decoded value is a new-api row rather than a task (it has `mj_id`)."""
    return isinstance(value, dict) and "mj_id" in value


def task_shape(row):
    """The camelCase task of a new-api row (see the module's docstring for odd values)."""
    if not isinstance(row, dict):
        return row
    task = {}
    if "mj_id" in row:
        task["id"] = row["mj_id"]
    task["action"] = row.get("action")
    # customId, botType and maskBase64: "" whatever the task in new-api's answers too.
    task["customId"] = task["botType"] = ""
    for field, key in TEXT_FIELDS:
        task[key] = row.get(field)
    task["videoUrls"] = list_of_urls(row.get("video_urls"))
    for field, key in STATUS_FIELDS:
        task[key] = row.get(field)
    task["buttons"] = decoded(row.get("buttons"), list)
    task["maskBase64"] = ""
    task["properties"] = decoded(row.get("properties"), dict)
    # Who asked: the relay's user, which its own answers leave out (the usage page's caller).
    user = row.get("user_id")
    task["userId"] = str(user) if isinstance(user, int) and not isinstance(user, bool) else user
    return task


def list_of_urls(value):
    """video_urls: `[{"url": ...}]` as JSON text (thumbnails dropped by new-api); null
    when empty or not such a list."""
    urls = decoded(value, list)
    if urls is None:
        return None
    return [u for u in urls if isinstance(u, dict)] or None


def decoded(value, kind):
    """The JSON text `value` decoded, when it holds a `kind`; a `kind` passes as it is
    (a relay that sends it decoded); anything else is None."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        found = json.loads(value, parse_constant=reject)
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, kind) else None


def reject(name):
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: a record must stay JSON
