"""A record's media beyond image_url: the pictures of a grid (imageUrls) and videos
(videoUrls, an MP4 image_url), as stored in Task.media, Task.is_video and
Task.video_duration. Pure functions over the standard library, like records.py.

trueai (FACTS-2 §2.6) sends `imageUrls` [{url, thumbnail}] (the four pictures of a grid)
and, for a video, `videoUrls` [{url, thumbnail}] whose mp4 links imageUrls repeats; new-api
rows, once converted to this shape, have `videoUrl`/`videoUrls` [{url}] without thumbnails.
Whatever a proxy sends here is only read, never trusted: anything that is not an http(s)
link of a sane length is dropped, and the list is bounded.
"""

import math
import re

from tasks.links import is_video_url, is_web_url

BLANK_OR_NUL = re.compile(r"[\s\x00]")  # str.isspace's characters, and NUL
MAX_MEDIA = 16  # a grid is 4, a video batch at most 4: more is not a real record
MAX_URL_LENGTH = 2000
VIDEO_ACTIONS = frozenset({"VIDEO", "VIDEO_EXTEND", "SWAP_VIDEO_FACE"})
MAX_DURATION = 24 * 3600.0  # seconds; a larger one is not a duration


def media_of(item):
    """(media, is_video, video_duration) of one record in the proxy's camelCase shape."""
    if not isinstance(item, dict):
        return [], False, None
    image_url = web_url(item.get("imageUrl"))
    media = []
    seen = {image_url} if image_url else set()
    # Videos first: trueai repeats a video's mp4 links in imageUrls, where they must not
    # count as pictures.
    entries = [("video", e) for e in listed(item.get("videoUrls"))]
    entries += [("video", {"url": item.get("videoUrl")})]
    entries += [("image", e) for e in listed(item.get("imageUrls"))]
    for kind, entry in entries:
        url = web_url(entry.get("url"))
        if not url or url in seen or len(media) >= MAX_MEDIA:
            continue
        seen.add(url)
        if kind == "image" and is_video_url(url):
            kind = "video"
        media.append({"kind": kind, "url": url, "thumbnail": web_url(entry.get("thumbnail"))})
    is_video = (
        text(item.get("contentType")).lower().startswith("video/")
        or text(item.get("action")).upper() in VIDEO_ACTIONS
        or is_video_url(image_url)
        or any(m["kind"] == "video" for m in media)
    )
    return media, is_video, duration(item.get("videoDuration"))


def listed(value):
    """The dict entries of a list field ([] for null, a string, an object...)."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value[: MAX_MEDIA * 4] if isinstance(entry, dict)]


def text(value):
    return value if isinstance(value, str) else ""


def web_url(value):
    """The value if it is an http(s) link of a sane length without blanks, else ""."""
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        return ""
    value = value.strip()
    if not is_web_url(value) or BLANK_OR_NUL.search(value):
        return ""
    return value


def duration(value):
    """videoDuration in seconds (an int on trueai; a numeric string is taken too), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer of a thousand digits
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_DURATION:
        return None
    return value
