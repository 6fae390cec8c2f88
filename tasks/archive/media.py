"""Archived images and thumbnails, served from storage to logged-in users only.

Nothing serves MEDIA_ROOT directly: a name must have exactly the shape the archive gives
its files (tasks/archive/passes.py), so no other file of the storage, and no path outside it, can
be asked for. Names are content-addressed, so a response never changes: browsers may keep
it for a year without asking again.
"""

import re

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseNotModified
from django.views.decorators.http import require_safe

from tasks.archive.files import FORMATS

TYPES = {ext: mime for ext, mime in FORMATS.values()}
EXT = r"\.(?:png|jpg|webp|gif)"
NAME = re.compile(
    rf"images/[0-9a-f]{{2}}/[0-9a-f]{{62}}{EXT}"
    r"|thumbs/[0-9a-f]{2}/[0-9a-f]{62}\.webp"
    rf"|previews/[0-9]{{1,19}}/[0-9a-f]{{16}}(?:{EXT}|-thumb\.webp)"
)
CACHE_CONTROL = "private, max-age=31536000, immutable"


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
        except (FileNotFoundError, OSError) as exc:
            raise Http404("no such file") from exc
        response = FileResponse(handle, content_type=TYPES[name.rsplit(".", 1)[1]])
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
