"""Discord-shaped ids and signed attachment links.

The signature (hm) covers the path and the ex/is pair only, as on Discord, so extra query
parameters such as width/height leave a link valid; ex - is is the image TTL, and a link is
dead once the simulator's clock reaches ex.
"""

import hashlib
import hmac
from urllib.parse import parse_qs, unquote, urlsplit

DISCORD_EPOCH_MS = 1420070400000
GONE = "This content is no longer available."


def snowflake(ms, low=0):
    # 18-19 digit ids that sort by time, like Discord's
    return str(((ms - DISCORD_EPOCH_MS) << 22) | (low & 0x3FFFFF))


class Signer:
    def __init__(self, seed, ttl):
        key = hashlib.sha256(f"mj-simulator:{seed}".encode()).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # copied per link: cheaper
        self.ttl = int(ttl)

    def _hm(self, path, ex, is_):
        mac = self._mac.copy()
        mac.update(f"{path}|{ex:x}|{is_:x}".encode())
        return mac.hexdigest()

    def url(self, base, channel, attachment, name, issued_ms):
        path = f"/attachments/{channel}/{attachment}/{name}"
        is_ = issued_ms // 1000
        ex = is_ + self.ttl
        return f"{base}{path}?ex={ex:x}&is={is_:x}&hm={self._hm(path, ex, is_)}&"

    def check(self, raw_path, now_ms):
        """Returns (path, query) of a live, authentic link, or None."""
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        try:
            ex = int(query["ex"][0], 16)
            is_ = int(query["is"][0], 16)
            hm = query["hm"][0]
        except (KeyError, ValueError, IndexError):
            return None
        path = unquote(parts.path)
        if not hmac.compare_digest(hm, self._hm(path, ex, is_)):
            return None
        if now_ms // 1000 >= ex:
            return None
        return path, query
