"""Columns derived from a record when it is stored, kept beside `raw`: Midjourney's
parameters (mode, version, aspect ratio, seed, bot), who asked (account, caller), the
parent task, and the task's media list (grid pictures, videos).

Pure functions over the standard library, like records.py. A record is whatever a proxy
sent, so every field is only read: a value of the wrong type counts as absent, text is
cut to its column's size, and nothing here raises.

Where each column comes from (FACTS.md, FACTS-2.md §2.6):
- mode: `mode` (trueai), else the tail of `properties.messageContent` ("(relaxed)",
  "(fast)", "(fast, stealth)", "(turbo)"); request_mode: `requestMode`. Stored as
  fast, relax or turbo.
- version, aspect, seed: the prompt's `--v 6.1` / `--version 6.1` / `--niji 6`, `--ar 16:9`
  / `--aspect 16:9` and `--seed 123`, read from properties.finalPrompt, then promptEn, then
  prompt (the first that has the parameter; the last occurrence in it, as Midjourney
  takes it). trueai's own `version` ("v 7", "niji 6") and `seed` when the prompts say
  nothing. A DESCRIBE's prompts are the bot's answer, not parameters, and a SHORTEN's
  finalPrompt is its analysis: neither is read.
- bot: `realBotType` (the bot that really ran it when trueai converts niji to MJ), else
  `botType`, else `properties.botType`; relays send "". Without any, a `--niji` version
  says NIJI_JOURNEY; nothing else is guessed (a record without a bot field is not
  assumed to be MID_JOURNEY).
- account: `properties.discordInstanceId`, else `instanceId` (the account's channel id).
- caller: `userId`, else new-api's `user_id`, else `state` (the caller's own tag).
- parent_task_id: `parentId`, else the id a follow-up command names in the description
  ("/up <id> U1", "/variation <id> 2").
"""

import functools
import re

from tasks.ingest.media_list import media_of

DERIVED_FIELDS = (
    "mode",
    "request_mode",
    "version",
    "aspect",
    "seed",
    "bot",
    "account",
    "caller",
    "parent_task_id",
    "media",
    "is_video",
    "video_duration",
)

# Column sizes (tasks/models.py): a longer value is cut, never refused.
SIZES = {"version": 20, "aspect": 20, "seed": 40, "bot": 20, "account": 64, "caller": 200}
SIZES["parent_task_id"] = 64

MODES = ("fast", "relax", "turbo")
MODE_SPELLINGS = {"fast": "fast", "relax": "relax", "relaxed": "relax", "turbo": "turbo"}
# The mode Midjourney names at the end of its message: "... - <@123> (relaxed)",
# "(fast, stealth)", "(Waiting to start)" (not a mode).
MODE_IN_MESSAGE = re.compile(r"\((fast|relaxed|relax|turbo)(?:,[^()]{0,40})?\)", re.IGNORECASE)
# Midjourney takes an em dash (phones turn "--" into one) for the two hyphens.
PARAMETER = re.compile(
    r"(?:--|\u2014)(v|version|niji|ar|aspect|seed)(?![a-z])[ \t]*"
    r"([0-9]{1,40}(?:\.[0-9]{1,3})?(?:[ \t]*:[ \t]*[0-9]{1,5})?)?",
    re.IGNORECASE,
)
NUMBER = r"[0-9]{1,3}(?:\.[0-9]{1,3})?"
VERSION = re.compile(rf"(?:v(?:ersion)?\s*)?({NUMBER})", re.IGNORECASE)
NIJI_VERSION = re.compile(rf"niji\s*({NUMBER})?", re.IGNORECASE)
ASPECT = re.compile(r"([0-9]{1,5})\s*:\s*([0-9]{1,5})")
SEED = re.compile(r"[0-9]{1,40}")
BOT = re.compile(r"[A-Z][A-Z_]{0,19}")
ACCOUNT = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
# "/up 1700000000000001 U1", "/variation <id> V2", "/reroll <id>": the parent's id.
PARENT_IN_DESCRIPTION = re.compile(
    r"^/(?:up|variation|reroll|zoom|pan|action)\s+([0-9A-Za-z_.:-]{1,64})"
)
# Their prompts are the bot's answer (DESCRIBE) or its analysis (SHORTEN's finalPrompt).
NO_PARAMETERS = frozenset({"DESCRIBE"})
RESULT_IN_FINAL_PROMPT = frozenset({"DESCRIBE", "SHORTEN"})
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def columns(item):
    """The derived columns of one record (a dict in the proxy's camelCase task shape)."""
    media, is_video, video_duration = media_of(item)
    if not isinstance(item, dict):
        item = {}
    properties = item.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    version, aspect, seed = prompt_parameters(item, properties)
    version = version or spell_version(text_of(item.get("version")))
    seed = seed or spell_seed(text_of(item.get("seed")))
    return {
        "mode": spell_mode(text_of(item.get("mode")))
        or mode_in_message(properties.get("messageContent")),
        "request_mode": spell_mode(text_of(item.get("requestMode"))),
        "version": version,
        "aspect": aspect,
        "seed": seed,
        "bot": bot_of(item, properties, version),
        "account": spell_account(
            text_of(properties.get("discordInstanceId")) or text_of(item.get("instanceId"))
        ),
        "caller": storable(
            text_of(item.get("userId"))
            or text_of(item.get("user_id"))
            or text_of(item.get("state")),
            SIZES["caller"],
        ),
        "parent_task_id": parent_of(item),
        "media": media,
        "is_video": is_video,
        "video_duration": video_duration,
    }


# Reading fields


def text_of(value):
    """A field's text: a string stripped, an integer in decimal; anything else is none."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if -(10**40) < value < 10**40 else ""
    return ""


def storable(text, size):
    # As records.clean_text (which imports this module, so it cannot be imported here):
    # NUL and lone surrogates cannot be stored; the raw record keeps the original.
    return UNSTORABLE.sub("\ufffd", text[:size])


def prompt_parameters(item, properties):
    """(version, aspect, seed) from the prompts' parameters; "" for each one absent."""
    action = text_of(item.get("action"))
    if action in NO_PARAMETERS:
        return "", "", ""
    texts = [item.get("promptEn"), item.get("prompt")]
    if action not in RESULT_IN_FINAL_PROMPT:
        texts.insert(0, properties.get("finalPrompt"))
    found = {}
    for text in texts:
        if not isinstance(text, str) or ("-" not in text and "\u2014" not in text):
            continue
        here = {}  # the last valid value of each parameter in this text
        for match in PARAMETER.finditer(text):
            name, value = match.group(1).lower(), match.group(2) or ""
            if name in ("v", "version"):
                name, value = "version", spell_version(value)
            elif name == "niji":
                name, value = "version", spell_version(f"niji {value}")
            elif name in ("ar", "aspect"):
                name, value = "aspect", spell_aspect(value)
            else:
                value = spell_seed(value)
            if value:
                here[name] = value
        for name, value in here.items():
            found.setdefault(name, value)
        if len(found) == 3:
            break
    return found.get("version", ""), found.get("aspect", ""), found.get("seed", "")


def mode_in_message(message):
    if not isinstance(message, str):
        return ""
    found = MODE_IN_MESSAGE.findall(message[-2000:])  # the tail is where the mode is
    return MODE_SPELLINGS[found[-1].lower()] if found else ""


def bot_of(item, properties, version):
    for value in (item.get("realBotType"), item.get("botType"), properties.get("botType")):
        bot = spell_bot(text_of(value))
        if bot:
            return bot
    return "NIJI_JOURNEY" if version.startswith("niji") else ""


def parent_of(item):
    parent = spell_account(text_of(item.get("parentId")))
    if parent:
        return parent
    description = item.get("description")
    if isinstance(description, str):
        match = PARENT_IN_DESCRIPTION.match(description[:200])
        if match and match.group(1) != item.get("id"):
            return match.group(1)
    return ""


# Spellings: one form for each value, shared with the filters (tasks/web/filters.py), so a
# value typed in a URL finds what was stored. Each returns "" for what is not a value.
# A mirror's records repeat a few modes, versions, ratios, bots and accounts: each
# spelling is remembered, so a sync matches its pattern once per value, not per record.
SPELLINGS_KEPT = 1024


@functools.lru_cache(maxsize=SPELLINGS_KEPT)
def spell_mode(text):
    """fast, relax or turbo, from any case and "relaxed"."""
    return MODE_SPELLINGS.get(text.strip().lower(), "")


@functools.lru_cache(maxsize=SPELLINGS_KEPT)
def spell_version(text):
    """ "6.1" from "6.1", "v 6.1", "v6.1"; "niji 6" from "niji 6", "niji6"; "niji" alone."""
    text = text.strip()
    match = NIJI_VERSION.fullmatch(text)
    if match:
        return f"niji {match.group(1)}" if match.group(1) else "niji"
    match = VERSION.fullmatch(text)
    return match.group(1) if match else ""


@functools.lru_cache(maxsize=SPELLINGS_KEPT)
def spell_aspect(text):
    """ "16:9" from "16:9" or "16 : 9"."""
    match = ASPECT.fullmatch(text.strip())
    return f"{int(match.group(1))}:{int(match.group(2))}" if match else ""


def spell_seed(text):
    text = text.strip()
    return text if SEED.fullmatch(text) else ""


@functools.lru_cache(maxsize=SPELLINGS_KEPT)
def spell_bot(text):
    """MID_JOURNEY, NIJI_JOURNEY, INSIGHT_FACE, ...: a bot's name in capitals."""
    text = text.strip().upper()
    return text if BOT.fullmatch(text) else ""


@functools.lru_cache(maxsize=SPELLINGS_KEPT)
def spell_account(text):
    """A channel id (or a task id): what a proxy's ids are made of, at most 64 characters."""
    text = text.strip()
    return text if ACCOUNT.fullmatch(text) else ""


def spell_caller(text):
    """A caller as the filters take it: any text that fits the column."""
    text = text.strip()
    return text if len(text) <= SIZES["caller"] else ""
