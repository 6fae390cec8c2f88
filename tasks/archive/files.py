"""The archive's files as pages and deletions see them: the formats kept, the thumbnail
size, whose files a name is, and deleting one. No Pillow and no workers here: pages
import this, and only the passes (tasks/archive/passes.py) make files."""

import logging

from django.core.files.storage import default_storage

log = logging.getLogger(__name__)

# Pillow decoders we accept; anything else (EPS, PSD, TIFF...) is never even tried.
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
}
# Videos, told apart by their bytes (tasks/archive/video.py), never by Pillow.
VIDEO_FORMATS = {"MP4": ("mp4", "video/mp4")}
THUMB_SIZE = 320  # the long side, in pixels (a video's poster too)


def is_preview_of(name, pk):
    return name.startswith(f"previews/{pk}/")


def delete_file(name):
    try:
        default_storage.delete(name)
    except OSError as exc:
        log.warning("could not delete %s: %s", name, exc)
