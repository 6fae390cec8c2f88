"""What the pages show for a task's image: the archived copy when there is one, else the
live link while it may still work, else nothing. Plain functions of a Task's fields, no
queries, so a list page can call them per row (Task.objects.for_list() has every field
they read)."""

from django.urls import reverse
from django.utils import timezone

from tasks.archive.files import THUMB_SIZE
from tasks.links import is_web_url, same_picture
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
    w, h = task.image_width, task.image_height
    if not w or not h:
        return None
    scale = min(1.0, THUMB_SIZE / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))
