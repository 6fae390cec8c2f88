"""Small real H.264 MP4s for the simulator's VIDEO tasks, made with PyAV, one per file name.

A few seconds of the task's picture (tasks/simulator/images.py) panning, so a mirror's
poster looks like the task and a player's time moves. H.264 in yuv420p with the index at
the front (faststart): what Debian's Chromium plays, and what a <video> can seek in with
range requests before the whole file is loaded.
"""

import io
import os
import re
import tempfile
import threading
from collections import OrderedDict
from fractions import Fraction

import av
from PIL import Image

from . import images

SIZE = 256  # pixels, square
FPS = 12
SECONDS = 3
CACHE_SIZE = 16
_RANGE = re.compile(r"bytes=([0-9]{0,12})-([0-9]{0,12})")

_cache = OrderedDict()
_lock = threading.Lock()


def video_bytes(name):
    """The MP4 for a file name such as `user_slug_job_0_1.mp4` (the same bytes every time)."""
    with _lock:
        if name in _cache:
            _cache.move_to_end(name)
            return _cache[name]
    data = _render(name)
    with _lock:
        _cache[name] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def _render(name):
    picture = Image.open(io.BytesIO(images.image_bytes(name.rsplit(".", 1)[0] + ".png")))
    picture = picture.convert("RGB").resize((SIZE * 2, SIZE * 2))
    # faststart moves the index in a second pass over the file: FFmpeg wants a real file.
    with tempfile.TemporaryDirectory(prefix="mj-sim-video-") as folder:
        path = os.path.join(folder, "video.mp4")
        _encode(picture, path)
        with open(path, "rb") as f:
            return f.read()


def _encode(picture, path):
    with av.open(path, mode="w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.options = {"preset": "veryfast", "crf": "30"}
        frames = FPS * SECONDS
        for i in range(frames):
            offset = round(SIZE * i / frames)  # a slow pan across the picture
            crop = picture.crop((offset, offset // 2, offset + SIZE, offset // 2 + SIZE))
            frame = av.VideoFrame.from_image(crop)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def answer(data, range_header):
    """(status, headers, body) for a GET of an MP4, honouring one `bytes=a-b` range as
    Discord's CDN does (a player seeks with them); other Range values get the whole file."""
    size = len(data)
    headers = {"Content-Type": "video/mp4", "Accept-Ranges": "bytes"}
    match = _RANGE.fullmatch((range_header or "").strip())
    if not match or match.groups() == ("", ""):
        return 200, headers, data
    first, last = match.groups()
    if first == "":
        first, last = max(0, size - int(last)), size - 1
    else:
        first, last = int(first), min(int(last) if last else size - 1, size - 1)
    if first >= size or first > last:
        headers["Content-Range"] = f"bytes */{size}"
        return 416, headers, b""
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return 206, headers, data[first : last + 1]
