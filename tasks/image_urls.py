"""What the pages show for a task's image: the archived copy when there is one, else the
live link while it may still work, else nothing. Plain functions of a Task's fields, no
queries, so a list page can call them per row (Task.objects.for_list() has every field
they read)."""

from django.urls import reverse
from django.utils import timezone

from .archive import THUMB_SIZE
from .images import is_web_url
from .models import ImageState


def media_url(name):
    """The /media/... URL of a stored file (served to logged-in users only)."""
    return reverse("media:file", args=[name]) if name else None


def live_link(task, now=None):
    """The proxy's own image URL, if it is a web link not known to be dead."""
    if not is_web_url(task.image_url) or task.image_state == ImageState.LOST:
        return None
    if task.image_expires is not None and task.image_expires <= (now or timezone.now()):
        return None
    return task.image_url


def thumb_url(task, now=None):
    """The small image for lists: the archived WebP thumbnail, or the live link."""
    if task.image_state == ImageState.ARCHIVED and task.thumb_file:
        return media_url(task.thumb_file)
    # Pending (a new image not copied yet), failed, or never archived: the live link,
    # then whatever copy an earlier image left (an in-progress preview, say).
    return live_link(task, now) or media_url(task.thumb_file)


def large_url(task, now=None):
    """The full-size image for the detail page; the thumbnail once retention removed it."""
    if task.image_state == ImageState.ARCHIVED and (task.image_file or task.thumb_file):
        return media_url(task.image_file or task.thumb_file)
    return live_link(task, now) or media_url(task.image_file or task.thumb_file)


def image_lost(task):
    """The link died before the archive could copy it (the detail page says so)."""
    return task.image_state == ImageState.LOST


def thumb_size(task):
    """(width, height) for the thumbnail's <img> tag, or None when the size is unknown."""
    w, h = task.image_width, task.image_height
    if not w or not h:
        return None
    scale = min(1.0, THUMB_SIZE / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))
