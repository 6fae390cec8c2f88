"""What must never leave mjsite: each source's secret, admin token and notify-hook token.

Proxies echo the notify-hook URL they were given (`notifyHook`, `properties.notifyHook`)
in every record they send, and its path, /hooks/mj/<token>/, is the credential that lets
anyone push records; a hostile or careless caller can put a secret into a prompt or a
fail reason. Every way out masks through one `Masker`, built once per request: pages
(`task` and `value` before rendering), exports (`plain` per CSV cell, `json_text` per
JSON line), the admin, the mirror API (`json_text`) and the logs (`mjsite.logging_filters`,
with the secrets this process has loaded). Masking happens on the way out only: `raw`
stays exactly as received.

`json_text` serves stored JSON texts as they are: it only ever touches the inside of JSON
strings, so a masked body is still valid JSON with every other byte as the proxy sent it,
and a body without a secret is returned as the very same string. It costs one substring
test per secret on a body that holds none.
"""

import functools
import json
import re

MASK = "•••"

# The credentials a source holds, never shown: what the proxy, the relay's admin list and
# the notify-hook accept.
SECRET_FIELDS = ("secret", "admin_token", "hook_token")

# Characters that no common JSON encoder writes as an escape (Jackson, Gson, Python,
# PHP, System.Text.Json): a run of them in a secret appears verbatim in any encoding.
VERBATIM_RUN = re.compile(r"[A-Za-z0-9_\-.~:;,?!@#$%^*()\[\]{}| ]+")

# A run of these can stand outside a JSON string (in a number, true, false or null); a
# secret with any other character can only ever occur inside a string.
OUTSIDE_STRING = frozenset("0123456789+-.eEtruefalsn")

PLAIN = re.compile(r"[A-Za-z0-9_\-]+")

# One JSON string token, escapes included (the text it is run on is valid JSON).
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def secret_values(rows=None):
    """Each source's secret, admin token and notify-hook token, however short, longest
    first (a secret that contains another is masked whole). `rows` of (secret,
    admin_token, hook_token) save the query where a page reads the sources anyway."""
    if rows is None:
        from tasks.models import Source  # here, so that the logging filter can import this module

        rows = Source.objects.values_list(*SECRET_FIELDS)
    found = {value for row in rows for value in row if value}
    remember(found)
    return sorted(found, key=len, reverse=True)


# The secrets this process has seen (every Source it loaded), for the logging filter,
# which must not query the database.
SEEN = set()


def remember(values):
    SEEN.update(v for v in values if v)


def remembered():
    return sorted(SEEN, key=len, reverse=True)


def redact(text, secrets):
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


# The proxy's text on a task, which pages and the admin show.
TASK_TEXT_FIELDS = (
    "prompt", "prompt_en", "description", "state", "fail_reason", "progress",
    "image_url", "image_error",
    "caller",  # derived from `state` when a record has no user id: any text a caller sent
)  # fmt: skip


class Masker:
    """Masks the secrets in whatever leaves: plain text, JSON texts, decoded JSON, tasks."""

    def __init__(self, secrets=None):
        secrets = secret_values() if secrets is None else secrets
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        # What a text must contain for a secret to be in it, however it was encoded.
        self.anchors = {s: anchors(s) for s in self.secrets}
        self.escaped = {}

    def plain(self, text):
        """A text shown as it is (a prompt, a CSV cell, an error); other values pass."""
        return redact(text, self.secrets) if isinstance(text, str) else text

    def value(self, value):
        """A decoded JSON value with every string in it, keys included, masked."""
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def record(self, text):
        """A stored record as text: a JSON text masked inside its strings; a text that is
        no JSON (an invalid record) with each secret masked as written and as JSON
        would escape it."""
        try:
            json.loads(text)
        except (TypeError, ValueError, RecursionError):
            for secret in self.secrets:
                for written in {
                    secret,
                    *(json.dumps(secret, ensure_ascii=a)[1:-1] for a in (0, 1)),
                }:
                    text = text.replace(written, MASK)
            return text
        return self.json_text(text)

    def task(self, task):
        """A task loaded for display, its proxy text masked in place. Such a task can no
        longer be saved (Task.save refuses it): the stored record stays as received."""
        loaded = task.__dict__
        for name in TASK_TEXT_FIELDS:
            if name in loaded:  # a deferred field stays deferred: no query
                loaded[name] = self.plain(loaded[name])
        if "properties" in loaded:
            loaded["properties"] = self.value(loaded["properties"])
        task.masked_for_display = True
        return task

    def found(self, text):
        """The secrets whose anchors are in the text (it may hold them)."""
        return [s for s in self.secrets if any(a in text for a in self.anchors[s])]

    def json_text(self, text):
        """A JSON text with the secrets in its strings masked; the same object if none."""
        found = self.found(text)
        if not found:
            return text
        if all(plain(s) for s in found) and ("\\" not in text or not self._escape(found, text)):
            # Plain secrets can neither stand outside a string nor cross its quotes, so
            # every occurrence is inside a string; none starts inside an escape.
            return redact(text, found)
        return STRING.sub(functools.partial(self._string, found), text)

    def json_array(self, texts):
        """A JSON array of these JSON texts, masked (the array is a JSON text itself)."""
        return self.json_text("[" + ",".join(texts) + "]")

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


def masker_for(request):
    """The request's Masker, built once (one query on the small source table)."""
    if not hasattr(request, "mjsite_masker"):
        request.mjsite_masker = Masker()
    return request.mjsite_masker


def plain(secret):
    """Letters, digits, - and _ only, and not only what can stand outside a JSON string."""
    return PLAIN.fullmatch(secret) is not None and not set(secret) <= OUTSIDE_STRING


def anchors(secret):
    """Substrings one of which is in any JSON encoding of the secret."""
    runs = VERBATIM_RUN.findall(secret)
    if runs:
        return [max(runs, key=len)]
    return [secret, "\\"]  # verbatim, or escaped in some way
