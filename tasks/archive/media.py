"""Archived images, thumbnails, videos and posters, served from storage to logged-in users only.

Nothing serves MEDIA_ROOT directly: a name must have exactly the shape the archive gives
its files (tasks/archive/passes.py), so no other file of the storage, and no path outside it, can
be asked for. Names are content-addressed, so a response never changes: browsers may keep
it for a year without asking again.

Range requests (RFC 9110 §14) are answered, so a <video> can seek: one range
(`bytes=a-b`, `bytes=a-`, `bytes=-n`) gets a 206 with Content-Range; a range that starts
past the end gets a 416; anything else in a Range header (several ranges, another unit,
nonsense) is ignored and the whole file is sent, as the RFC allows. Django's FileResponse
does not do ranges, and whitenoise serves only static files.
"""

import re

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_safe

from tasks.archive.files import FORMATS, VIDEO_FORMATS

TYPES = {ext: mime for ext, mime in FORMATS.values()} | dict(VIDEO_FORMATS.values())
EXT = r"\.(?:png|jpg|webp|gif|mp4)"
NAME = re.compile(
    rf"images/[0-9a-f]{{2}}/[0-9a-f]{{62}}{EXT}"
    r"|videos/[0-9a-f]{2}/[0-9a-f]{62}\.mp4"
    r"|thumbs/[0-9a-f]{2}/[0-9a-f]{62}\.webp"
    rf"|previews/[0-9]{{1,19}}/[0-9a-f]{{16}}(?:{EXT}|-thumb\.webp)"
)
CACHE_CONTROL = "private, max-age=31536000, immutable"
RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


@require_safe
@login_required
def serve_file(request, name):
    if not NAME.fullmatch(name):
        raise Http404("no such file")
    etag = f'"{name.rsplit("/", 1)[-1].split(".")[0]}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        try:
            handle = default_storage.open(name, "rb")
            size = default_storage.size(name)
        except (FileNotFoundError, OSError) as exc:
            raise Http404("no such file") from exc
        content_type = TYPES[name.rsplit(".", 1)[1]]
        wanted = requested_range(request, etag, size)
        if wanted is None:
            response = FileResponse(handle, content_type=content_type)
        elif wanted == "unsatisfiable":
            handle.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
        else:
            start, end = wanted
            handle.seek(start)
            response = FileResponse(Part(handle, end - start + 1), content_type=content_type)
            response.status_code = 206
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Content-Length"] = str(end - start + 1)
        response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def requested_range(request, etag, size):
    """(first, last) byte of the one range asked for; "unsatisfiable"; or None: the whole
    file (no Range, one the server ignores, or an If-Range that is not this file)."""
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    match = RANGE.fullmatch(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None  # another unit, several ranges, or nonsense: ignored
    first, last = match.groups()
    if first == "":  # the last n bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(first)
    last = size - 1 if last == "" else min(int(last), size - 1)
    if first > last:
        # Past the end: 416. A last before the first is a syntax error: ignored.
        return "unsatisfiable" if first >= size else None
    return first, last


class Part:
    """A file read from where it was sought to, `length` bytes at most (FileResponse
    reads it in blocks and closes it)."""

    def __init__(self, handle, length):
        self.handle = handle
        self.left = length

    def read(self, size=-1):
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self):
        self.handle.close()
