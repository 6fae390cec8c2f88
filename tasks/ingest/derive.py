"""Columns derived from a record when it is stored, kept beside `raw`: Midjourney's
parameters (mode, version, aspect ratio, seed, bot), who asked (account, caller), the
parent task, and the task's media list (grid pictures, videos).

Pure functions over the standard library, like records.py.
"""

from tasks.ingest.media_list import media_of

DERIVED_FIELDS = (
    "mode",
    "request_mode",
    "version",
    "aspect",
    "seed",
    "bot",
    "account",
    "caller",
    "parent_task_id",
    "media",
    "is_video",
    "video_duration",
)


def columns(item):
    """The derived columns of one record (a dict in the proxy's camelCase task shape)."""
    media, is_video, video_duration = media_of(item)
    return {
        "mode": "",
        "request_mode": "",
        "version": "",
        "aspect": "",
        "seed": "",
        "bot": "",
        "account": "",
        "caller": "",
        "parent_task_id": "",
        "media": media,
        "is_video": is_video,
        "video_duration": video_duration,
    }
