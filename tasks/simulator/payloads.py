"""Builds the record of one planned task at one moment, in novicezk's shape and key order
(`support/Task.java`), plus the extra facts the other flavors dress it with."""

import hashlib
import json
import random
from functools import lru_cache

from . import content
from .lifecycle import state_at
from .links import snowflake

# Actions whose result is a 2x2 grid, offered the U1..U4 / reroll / V1..V4 buttons.
GRID_ACTIONS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "PAN"})
# Actions that act on a parent task's buttons, so they reference its message.
CHILD_ACTIONS = frozenset({"UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN"})
BUTTON_ACTIONS = GRID_ACTIONS | {"UPSCALE", "DESCRIBE", "SHORTEN"}
MODES = ("FAST", "FAST", "FAST", "RELAX", "TURBO")
IMAGE_SIZE = 512


class Context:
    # What records need from the simulator around them.
    def __init__(self, base_url, signer, notify_hook, channels, lookup):
        self.base_url = base_url
        self.signer = signer
        self.notify_hook = notify_hook
        self.channels = channels
        self.lookup = lookup  # task id -> Plan or None, to reference a parent's message


def job_hash(rs):
    # Midjourney's job uuid: the messageHash, the custom ids' suffix and the file name's tail
    h = hashlib.blake2b(rs.to_bytes(8, "big"), digest_size=16, person=b"job").hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def message_id(plan):
    return snowflake(plan.t_finish, plan.rs & 0x3FFFFF)


@lru_cache(maxsize=4096)
def _texts(prompt):
    # (typed, promptEn, file-name slug, botType), cached: a plan's prompt is mostly an index
    if isinstance(prompt, int):
        typed, en = content.prompt_text(prompt)
    else:
        typed, en = prompt, content.translate(prompt)
    bot = "NIJI_JOURNEY" if "--niji" in typed else "MID_JOURNEY"
    return typed, en, content.slug(en), bot


def build(plan, now, ctx, raw=False):
    """(record, extras) for `plan` at `now`. raw=True puts a marker where the buttons go,
    for the list stream to splice in pre-encoded JSON (see buttons_json)."""
    st = state_at(plan, now)
    # one hash gives every detail that must stay the same for this task
    bits = int.from_bytes(
        hashlib.blake2b(plan.rs.to_bytes(8, "big"), digest_size=32).digest(), "big"
    )
    bits, channel_i = divmod(bits, len(ctx.channels))
    bits, user_index = divmod(bits, len(content.USERS))
    bits, n = divmod(bits, 4)
    bits, mode_i = divmod(bits, len(MODES))
    bits, mj_seed = divmod(bits, 2**32)
    bits, state_i = divmod(bits, 2500)
    bits, blend_n = divmod(bits, 4)
    n += 1
    blend_n += 2
    channel = ctx.channels[channel_i]
    user = content.USERS[user_index]
    mode = MODES[mode_i]
    state_field = f"uid:{state_i // 5}" if state_i % 5 == 0 else None
    low = plan.rs & 0x3FFFFF
    job = job_hash(plan.rs)
    action = plan.action
    status = st.status
    success = status == "SUCCESS"

    typed, en, slug, bot_type = _texts(plan.prompt)
    if action == "DESCRIBE" or action == "BLEND":
        typed = en = ""
    parent = plan.parent
    description = _description(plan, action, typed, parent, n, blend_n)

    final_prompt = None
    if success and action == "DESCRIBE":
        final_prompt = content.describe_result(random.Random(plan.rs))
        typed = en = final_prompt
    elif success and action == "SHORTEN":
        final_prompt = content.shorten_result(en, random.Random(plan.rs))
    elif st.step >= 1 and action != "DESCRIBE" and action != "SHORTEN":
        final_prompt = en

    image_url = None
    result_link = None  # name -> a signed link beside the result (trueai's grids, videos)
    signer, base = ctx.signer, ctx.base_url
    if action == "DESCRIBE":
        if status != "FAILURE":
            # the uploaded picture being described, there from the start
            name = f"{plan.id}.png"
            image_url = signer.url(base, channel, snowflake(plan.sub, low + 2), name, plan.sub)
    elif action == "SHORTEN":
        pass
    elif success:
        name = f"{user}_{slug}_{job}.png"
        attachment = snowflake(plan.t_finish, low + 1)
        image_url = signer.url(base, channel, attachment, name, plan.t_finish)

        def result_link(name, attachment=attachment):
            return signer.url(base, channel, attachment, name, plan.t_finish)

    elif status == "IN_PROGRESS" and st.step >= 1:
        # a fresh attachment per progress message; its low bits carry the step for the renderer
        name = f"{user}_{slug}_{job}_grid_0.webp"
        attachment = snowflake(st.step_ms, st.step)
        image_url = signer.url(base, channel, attachment, name, st.step_ms)

    props = {"notifyHook": ctx.notify_hook}
    if status != "NOT_START":
        props["flags"] = 0
    if success:
        props["messageId"] = message_id(plan)
        props["messageHash"] = job
    props["nonce"] = snowflake(plan.sub, low)
    if final_prompt is not None:
        props["finalPrompt"] = final_prompt
    if status != "NOT_START":
        props["progressMessageId"] = snowflake(plan.t_submitted, low)
    props["discordChannelId"] = channel
    props["discordInstanceId"] = channel
    props["botType"] = bot_type
    if success and typed != en:
        props["finalZhPrompt"] = typed
    if parent and action in CHILD_ACTIONS:
        pp = ctx.lookup(parent)
        props["referencedMessageId"] = (
            message_id(pp) if pp else snowflake(plan.sub - 600_000, plan.rs >> 22)
        )
        props["customId"] = _custom_id(action, n, job_hash(pp.rs) if pp else job)

    finished = success or status == "FAILURE"
    record = {
        "id": plan.id,
        "properties": props,
        "action": action,
        "status": status,
        "prompt": typed,
        "promptEn": en,
        "description": description,
        "state": state_field,
        "submitTime": plan.sub,
        "startTime": plan.t_start if st.started else None,
        "finishTime": plan.t_finish if finished else None,
        "imageUrl": image_url,
        "progress": st.progress,
        "failReason": plan.fail if status == "FAILURE" else None,
    }
    if not success or action not in BUTTON_ACTIONS:
        buttons = []
    elif raw:
        buttons = f"{BUTTONS_MARK}{action}:{job}"
    else:
        buttons = _buttons(action, job)
    extras = {
        "buttons": buttons,
        "mode": mode,
        "seed": str(mj_seed) if success else None,
        "job": job if success else None,
        "channel": channel,
        "bot_type": bot_type,
        "size": IMAGE_SIZE if success and image_url else None,
        "use_time": plan.t_finish - plan.t_start if st.started and finished else None,
        "parent": parent if action in CHILD_ACTIONS else None,
        # trueai: who asked (a guest has none, and may tag the task with a state instead),
        # and the speed asked for through /mj-fast/, /mj-relax/ (most ask for none).
        "user_id": user if state_field is None else None,
        "request_mode": mode if state_i % 3 == 0 else None,
        "final_prompt": final_prompt,
        "result_link": result_link,
        "result_stem": f"{user}_{slug}_{job}",
        "populated": isinstance(plan.prompt, int),  # made up by the simulator, not submit()
    }
    return record, extras


# Buttons are most of a finished task's JSON and slow to encode as nine small dicts; the
# list stream encodes a marker instead and splices in these bytes, identical to json.dumps'.
BUTTONS_MARK = "\x00buttons:"
_MARK_JSON = b'"\\u0000buttons:'  # the marker as json.dumps writes it


@lru_cache(maxsize=32)
def _buttons_template(action):
    text = json.dumps(_buttons(action, "@@job@@"), ensure_ascii=False, separators=(",", ":"))
    return text.encode().split(b"@@job@@")


def splice_buttons(data):
    """UTF-8 JSON bytes with every buttons marker replaced by the buttons' JSON."""
    parts = data.split(_MARK_JSON)
    if len(parts) == 1:
        return data
    out = [parts[0]]
    for part in parts[1:]:
        # part is b'ACTION:<36-char job>"' followed by the rest of the record
        colon = part.index(b":")
        job = part[colon + 1 : colon + 37]
        out.append(job.join(_buttons_template(part[:colon].decode())))
        out.append(part[colon + 38 :])
    return b"".join(out)


def _description(plan, action, typed, parent, n, blend_n):
    if action == "IMAGINE":
        return f"/imagine {typed}"
    if action == "UPSCALE":
        return f"/up {parent} U{n}"
    if action == "VARIATION":
        return f"/up {parent} V{n}"
    if action == "REROLL":
        return f"/up {parent} R"
    if action == "ZOOM":
        return f"/up {parent} Zoom Out 2x"
    if action == "PAN":
        return f"/up {parent} ⬅️"
    if action == "DESCRIBE":
        return f"/describe {plan.id}.png"
    if action == "BLEND":
        return f"/blend {plan.id} {blend_n}"
    return f"/{action.lower()} {typed}"


def _custom_id(action, n, job):
    if action == "UPSCALE":
        return f"MJ::JOB::upsample::{n}::{job}"
    if action == "VARIATION":
        return f"MJ::JOB::variation::{n}::{job}"
    if action == "REROLL":
        return f"MJ::JOB::reroll::0::{job}::SOLO"
    if action == "ZOOM":
        return f"MJ::Outpaint::50::1::{job}::SOLO"
    return f"MJ::JOB::pan_left::1::{job}::SOLO"


def _button(custom_id, label="", emoji=""):
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


def _buttons(action, job):
    if action in GRID_ACTIONS:
        return (
            [_button(f"MJ::JOB::upsample::{i}::{job}", f"U{i}") for i in range(1, 5)]
            + [_button(f"MJ::JOB::reroll::0::{job}::SOLO", emoji="🔄")]
            + [_button(f"MJ::JOB::variation::{i}::{job}", f"V{i}") for i in range(1, 5)]
        )
    if action == "UPSCALE":
        return [
            _button(f"MJ::JOB::high_variation::1::{job}::SOLO", "Vary (Strong)", "🪄"),
            _button(f"MJ::JOB::low_variation::1::{job}::SOLO", "Vary (Subtle)", "🪄"),
            _button(f"MJ::Outpaint::50::1::{job}::SOLO", "Zoom Out 2x", "🔍"),
            _button(f"MJ::Outpaint::75::1::{job}::SOLO", "Zoom Out 1.5x", "🔍"),
            _button(f"MJ::JOB::pan_left::1::{job}::SOLO", emoji="⬅️"),
            _button(f"MJ::JOB::pan_right::1::{job}::SOLO", emoji="➡️"),
            _button(f"MJ::JOB::pan_up::1::{job}::SOLO", emoji="⬆️"),
            _button(f"MJ::JOB::pan_down::1::{job}::SOLO", emoji="⬇️"),
        ]
    if action == "DESCRIBE":
        return [_button(f"MJ::Job::PicReader::{i}", emoji=f"{i}️⃣") for i in range(1, 5)] + [
            _button("MJ::Picreader::Retry", emoji="🔄")
        ]
    if action == "SHORTEN":
        return [_button(f"MJ::Job::PromptAnalyzer::{i}", emoji=f"{i}️⃣") for i in range(1, 6)]
    return []
