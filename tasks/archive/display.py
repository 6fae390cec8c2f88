"""What the pages show for a task's image: the archived copy when there is one, else the
live link while it may still work, else nothing. Plain functions of a Task's fields, no
queries, so a list page can call them per row (Task.objects.for_list() has every field
they read)."""

from django.urls import reverse
from django.utils import timezone

from tasks.archive.files import THUMB_SIZE
from tasks.links import is_video_url, is_web_url, link_expiry, same_picture
from tasks.models import ImageState


def media_url(name):
    """The /media/... URL of a stored file (served to logged-in users only)."""
    return reverse("media:file", args=[name]) if name else None


def has_copy(task):
    """The archive holds a copy of this task's image, or of an earlier one of its links."""
    return bool(task.image_file or task.thumb_file)


def live_link(task, now=None):
    """The proxy's own image URL, if it is a web link not known to be dead."""
    if not is_web_url(task.image_url) or task.image_state == ImageState.LOST:
        return None
    if task.image_expires is not None and task.image_expires <= (now or timezone.now()):
        return None
    return task.image_url


def copy_first(task):
    """Whether the stored copy beats the live link: when it is a copy of this picture (the
    link itself, or a re-signed link of it), not of the grid preview before a final image
    that is still to be copied or could not be."""
    if not task.archived_url:  # not recorded which link was copied: trust the state
        return task.image_state != ImageState.PENDING
    return same_picture(task.archived_url, task.image_url)


def thumb_url(task, now=None):
    """The small image for lists: the archived WebP thumbnail, or the live link."""
    copy = media_url(task.thumb_file)
    if copy and copy_first(task):
        return copy
    return live_link(task, now) or copy


def large_url(task, now=None):
    """The full-size image for the detail page; the thumbnail once retention removed it."""
    copy = media_url(task.image_file or task.thumb_file)
    if copy and copy_first(task):
        return copy
    return live_link(task, now) or copy


def image_lost(task):
    """The link died before the archive could copy it, and no copy of an earlier link of
    the task is kept either (the pages say so instead of showing a broken image)."""
    return task.image_state == ImageState.LOST and not has_copy(task)


def thumb_size(task):
    """(width, height) for the thumbnail's <img> tag, or None when the size is unknown."""
    return fitted(task.image_width, task.image_height)


def fitted(w, h):
    """A picture's size as its thumbnail has it, or None when the size is unknown."""
    if not w or not h:
        return None
    scale = min(1.0, THUMB_SIZE / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


# Grids and videos (Task.media, copied into TaskMedia rows)


def shows_video(task):
    """Whether the task's own image_url is a video: its copy is an MP4, or, before it is
    copied, the record says so (the pages then show a <video>, never an <img> of an MP4)."""
    if task.image_type:
        return task.image_type.startswith("video/")
    return bool(task.is_video) and is_video_url(task.image_url)


def video_poster(task, now=None):
    """The poster of a video task for lists: its archived first frame, else the proxy's
    thumbnail of its first video while that link may live."""
    if task.thumb_file and task.image_type.startswith("video/"):
        return media_url(task.thumb_file)
    for entry in media_list(task):
        if entry["kind"] == "video" and live(entry.get("thumbnail"), now):
            return entry["thumbnail"]
    return None


def picture_count(task):
    """How many pictures of a grid the task has (the gallery's "4" badge); 0 for none."""
    return sum(1 for entry in media_list(task) if entry["kind"] == "image")


def media_items(task, copies, now=None):
    """What the detail page shows for each entry of Task.media, in order: `copies` are the
    task's TaskMedia rows by position. Each: kind, src (the archived original or MP4, else
    the live link), thumb (thumbnail or poster), width, height, duration, and lost (the
    link died uncopied: nothing to show)."""
    items = []
    for position, entry in enumerate(media_list(task)):
        copy = copies.get(position)
        copied = copy is not None and copy.state == ImageState.ARCHIVED and copy.file
        item = {
            "kind": copy.kind if copied else entry["kind"],
            "src": media_url(copy.file) if copied else live(entry["url"], now),
            "thumb": media_url(copy.thumb_file) if copied else live(entry.get("thumbnail"), now),
            "width": copy.width if copied else None,
            "height": copy.height if copied else None,
            "duration": (copy.duration if copied else None) or None,
            "position": position + 1,
        }
        item["lost"] = item["src"] is None
        items.append(item)
    return items


def media_list(task):
    """Task.media as stored by the sync (tasks/ingest/media_list.py), read defensively."""
    media = task.media if isinstance(task.media, list) else []
    return [m for m in media if isinstance(m, dict) and m.get("kind") in ("image", "video")]


def live(url, now=None):
    """A media link as pages may show it: http(s) only, and not past its `ex`."""
    if not is_web_url(url):
        return None
    expires = link_expiry(url)
    if expires is not None and expires <= (now or timezone.now()):
        return None
    return url
