"""Pillow-drawn stand-ins for Midjourney images, deterministic per file name.

A grid preview (`..._grid_0.webp`) is the final picture of the same job, small and blurred
(less so as the job progresses), so a mirror's archived preview looks like its final image.
trueai's grid pictures (`..._0_1.png`) are pictures of their own, and their thumbnails
(`..._0_1_640_N.webp`) the same picture as WebP.
"""

import hashlib
import io
import random
import re
import threading
from collections import OrderedDict

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

FINAL_SIZE = 512
PREVIEW_SIZE = 256
CACHE_SIZE = 300

_cache = OrderedDict()
_lock = threading.Lock()
_GRID = re.compile(r"_grid_0\.webp$")
_THUMB = re.compile(r"_640_N\.webp$")


def content_type(name):
    return "image/webp" if name.endswith(".webp") else "image/png"


def image_bytes(name, step=6, width=None, height=None):
    key = (name, step, width, height)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = _render(name, step, width, height)
    with _lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def _render(name, step, width, height):
    preview = bool(_GRID.search(name))
    small = bool(_THUMB.search(name))  # trueai's `..._0_1_640_N.webp` of `..._0_1.png`
    base = _GRID.sub("", name).rsplit(".", 1)[0].removesuffix("_640_N")
    img = _picture(base)
    if preview:
        img = img.resize((PREVIEW_SIZE, PREVIEW_SIZE))
        img = img.filter(ImageFilter.GaussianBlur(max(0, 6 - step) * 1.5 + 0.5))
    if width or height:
        w = width or round(img.width * height / img.height)
        h = height or round(img.height * width / img.width)
        img = img.resize((max(1, min(w, 2048)), max(1, min(h, 2048))))
    out = io.BytesIO()
    if preview or small:
        img.save(out, "WEBP", quality=70)
    else:
        img.save(out, "PNG")
    return out.getvalue()


def _picture(base):
    rng = random.Random(hashlib.sha256(base.encode()).digest())
    size = FINAL_SIZE

    def colour():
        return tuple(rng.randrange(30, 226) for _ in range(3))

    img = ImageOps.colorize(Image.linear_gradient("L").resize((size, size)), colour(), colour())
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(4, 9)):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(20, size // 3)
        box = (x - r, y - r, x + r, y + r)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour())
        else:
            draw.rectangle(box, fill=colour())
    label = " ".join(base.split("_")[1:-1])[:40] or base[:40]
    draw.rectangle((0, size - 44, size, size), fill=(20, 20, 20))
    draw.text((12, size - 36), label, fill=(240, 240, 240), font=_font())
    return img


_FONT = []


def _font():
    if not _FONT:
        try:
            _FONT.append(ImageFont.load_default(size=22))
        except TypeError:  # Pillow without FreeType: the fixed bitmap font
            _FONT.append(ImageFont.load_default())
    return _FONT[0]
