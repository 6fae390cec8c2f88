"""What must never leave mjsite: each source's secret and its notify-hook token.

Proxies echo the notify-hook URL they were given (`notifyHook`, `properties.notifyHook`)
in every record they send, and its path, /hooks/mj/<token>/, is the credential that lets
anyone push records. Pages, exports, the admin and the mirror API replace each of these
values with MASK before a record leaves.

`secret_values` and `redact` work on any text. `JsonRedactor` is for the API, which
serves stored JSON texts as they are: it only ever touches the inside of JSON strings,
so a redacted body is still valid JSON with every other byte as the proxy sent it, and a
body without a secret is returned as the very same string. It is built once per request
(one query on the small source table) and costs one substring test per secret on a
body that holds none.
"""

import functools
import json
import re

from .models import Source

MASK = "•••"

# Characters that no common JSON encoder writes as an escape (Jackson, Gson, Python,
# PHP, System.Text.Json): a run of them in a secret appears verbatim in any encoding.
VERBATIM_RUN = re.compile(r"[A-Za-z0-9_\-.~:;,?!@#$%^*()\[\]{}| ]+")

# A run of these can stand outside a JSON string (in a number, true, false or null); a
# secret with any other character can only ever occur inside a string.
OUTSIDE_STRING = frozenset("0123456789+-.eEtruefalsn")

PLAIN = re.compile(r"[A-Za-z0-9_\-]+")

# One JSON string token, escapes included (the text it is run on is valid JSON).
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def secret_values():
    # What must never reach a page: each source's secret and notify-hook token (the
    # proxy echoes notifyHook, which holds the token, in every record it sends).
    found = []
    for secret, token in Source.objects.values_list("secret", "hook_token"):
        found += [v for v in (secret, token) if v and len(v) >= 6]
    # Longest first: a secret that contains another is masked whole.
    return sorted(set(found), key=len, reverse=True)


def redact(text, secrets):
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


class JsonRedactor:
    """Masks secrets inside the strings of JSON texts, leaving everything else as it is."""

    def __init__(self, secrets=None):
        secrets = secret_values() if secrets is None else secrets
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        # What a text must contain for a secret to be in it, however it was encoded.
        self.anchors = {s: anchors(s) for s in self.secrets}
        self.escaped = {}

    def found(self, text):
        """The secrets whose anchors are in the text (it may hold them)."""
        return [s for s in self.secrets if any(a in text for a in self.anchors[s])]

    def text(self, text):
        """A JSON text with the secrets in its strings masked; the same object if none."""
        found = self.found(text)
        if not found:
            return text
        if all(plain(s) for s in found) and ("\\" not in text or not self._escape(found, text)):
            # Plain secrets can neither stand outside a string nor cross its quotes, so
            # every occurrence is inside a string; none starts inside an escape.
            return redact(text, found)
        return STRING.sub(functools.partial(self._string, found), text)

    def array(self, texts):
        """A JSON array of these JSON texts, masked (the array is a JSON text itself)."""
        return self.text("[" + ",".join(texts) + "]")

    def _escape(self, found, text):
        """Whether a secret may start inside an escape (\\n, \\u00e9): a backslash, maybe
        a u and up to three hex digits, then the secret. A false alarm (the backslash is
        itself escaped) only sends the text the slow way."""
        key = tuple(found)
        if key not in self.escaped:
            alternatives = "|".join(re.escape(s) for s in found)
            self.escaped[key] = re.compile(rf"\\(?:u[0-9A-Fa-f]{{0,3}})?(?:{alternatives})")
        return self.escaped[key].search(text) is not None

    def _string(self, found, match):
        token = match.group()
        if not any(a in token for s in found for a in self.anchors[s]):
            return token
        if "\\" not in token:
            # No escapes: the token's text is its value.
            return f'"{redact(token[1:-1], found)}"'
        value = json.loads(token)
        masked = redact(value, found)
        if masked == value:
            return token
        try:
            masked.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (escaped in the original): keep it so
            return json.dumps(masked)
        return json.dumps(masked, ensure_ascii=False)


def plain(secret):
    """Letters, digits, - and _ only, and not only what can stand outside a JSON string."""
    return PLAIN.fullmatch(secret) is not None and not set(secret) <= OUTSIDE_STRING


def anchors(secret):
    """Substrings one of which is in any JSON encoding of the secret."""
    runs = VERBATIM_RUN.findall(secret)
    if runs:
        return [max(runs, key=len)]
    return [secret, "\\"]  # verbatim, or escaped in some way
