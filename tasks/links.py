"""Small facts about media URLs, shared by the sync, the archive and the pages."""

import functools
from datetime import UTC, datetime
from urllib.parse import parse_qs
from urllib.parse import urlsplit as parse_url

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm")


@functools.lru_cache(maxsize=4096)
def urlsplit(url):
    """urllib's urlsplit, remembered for a sync batch's links: the sync asks about each
    record's image link four times (is it a web link, a video, when does it expire), the
    last when the whole batch has been read."""
    return parse_url(url)


def is_web_url(url):
    """Only http(s) image URLs are ever fetched or shown."""
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def link_expiry(url):
    """When a signed Discord-style link dies: its `ex` parameter, hex epoch seconds."""
    if "ex=" not in url or not is_web_url(url):
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("ex")
        if values:
            return datetime.fromtimestamp(int(values[0], 16), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def same_picture(a, b):
    """Two links to the same file: Discord re-signs a link (new ex, is and hm) but keeps
    its host and path, which name the attachment."""
    if not is_web_url(a) or not is_web_url(b):
        return False
    try:
        x, y = urlsplit(a.strip()), urlsplit(b.strip())
    except ValueError:
        return False
    return (x.scheme.lower(), x.netloc.lower(), x.path) == (
        y.scheme.lower(),
        y.netloc.lower(),
        y.path,
    )


def is_video_url(url):
    """The link's path ends like a video file's (trueai's VIDEO imageUrl is an MP4)."""
    if not isinstance(url, str) or not url:
        return False
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return False
    return path.endswith(VIDEO_EXTENSIONS)
