"""Builds the record of one planned task at one moment, in novicezk's shape and key order
(`support/Task.java`), plus the extra facts the other flavors dress it with."""

import hashlib
import random
import uuid

from . import content
from .lifecycle import state_at
from .links import snowflake

# Actions whose result is a 2x2 grid, offered the U1..U4 / reroll / V1..V4 buttons.
GRID_ACTIONS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "PAN"})
# Actions that act on a parent task's buttons, so they reference its message.
CHILD_ACTIONS = frozenset({"UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN"})
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
    return str(uuid.UUID(bytes=hashlib.md5(rs.to_bytes(8, "big")).digest(), version=4))


def message_id(plan):
    return snowflake(plan.t_finish, plan.rs & 0x3FFFFF)


def texts(plan):
    if isinstance(plan.prompt, int):
        return content.prompt_text(plan.prompt)
    return plan.prompt, content.translate(plan.prompt)


def build(plan, now, ctx):
    st = state_at(plan, now)
    r = random.Random(plan.rs ^ 0x5BD1E995)
    channel = ctx.channels[r.randrange(len(ctx.channels))]
    user_index = r.randrange(len(content.USERS))
    user = content.USERS[user_index]
    n = r.randint(1, 4)
    mode = r.choice(MODES)
    mj_seed = str(r.randrange(10**8, 2**32))
    state_field = f"uid:{r.randrange(1, 500)}" if r.random() < 0.2 else None
    blend_n = r.randint(2, 5)
    low = plan.rs & 0x3FFFFF
    job = job_hash(plan.rs)
    action = plan.action
    success = st.status == "SUCCESS"

    typed, en = texts(plan)
    if action in ("DESCRIBE", "BLEND"):
        typed = en = ""
    parent = plan.parent
    description = _description(plan, action, typed, parent, n, blend_n)

    final_prompt = None
    if success and action == "DESCRIBE":
        final_prompt = content.describe_result(r)
        typed = en = final_prompt
    elif success and action == "SHORTEN":
        final_prompt = content.shorten_result(en, r)
    elif st.step >= 1 and action not in ("DESCRIBE", "SHORTEN"):
        final_prompt = en

    image_url = None
    slug = content.slug(en)
    if action == "DESCRIBE" and st.status != "FAILURE":
        # the uploaded picture being described, there from the start
        image_url = ctx.signer.url(
            ctx.base_url, channel, snowflake(plan.sub, low), f"{plan.id}.png", plan.sub
        )
    elif action != "SHORTEN" and success:
        name = f"{user}_{slug}_{job}.png"
        attachment = snowflake(plan.t_finish, low + 1)
        image_url = ctx.signer.url(ctx.base_url, channel, attachment, name, plan.t_finish)
    elif action != "SHORTEN" and st.status == "IN_PROGRESS" and st.step >= 1:
        # a fresh attachment per progress message; its low bits carry the step for the renderer
        name = f"{user}_{slug}_{job}_grid_0.webp"
        attachment = snowflake(st.step_ms, st.step)
        image_url = ctx.signer.url(ctx.base_url, channel, attachment, name, st.step_ms)

    bot_type = "NIJI_JOURNEY" if "--niji" in typed else "MID_JOURNEY"
    props = {"notifyHook": ctx.notify_hook}
    if st.status != "NOT_START":
        props["flags"] = 0
    if success:
        props["messageId"] = message_id(plan)
        props["messageHash"] = job
    props["nonce"] = snowflake(plan.sub, low)
    if final_prompt is not None:
        props["finalPrompt"] = final_prompt
    if st.status != "NOT_START":
        props["progressMessageId"] = snowflake(plan.t_submitted, low)
    props["discordChannelId"] = channel
    props["discordInstanceId"] = channel
    props["botType"] = bot_type
    if success and typed != en:
        props["finalZhPrompt"] = typed
    if action in CHILD_ACTIONS and parent:
        pp = ctx.lookup(parent)
        props["referencedMessageId"] = (
            message_id(pp) if pp else snowflake(plan.sub - 600_000, plan.rs >> 22)
        )
        props["customId"] = _custom_id(action, n, job_hash(pp.rs) if pp else job)
    if final_prompt is not None and action not in ("DESCRIBE", "SHORTEN"):
        props["messageContent"] = f"**{en}** - <@{snowflake(1_600_000_000_000, user_index)}>"

    record = {
        "id": plan.id,
        "properties": props,
        "action": action,
        "status": st.status,
        "prompt": typed,
        "promptEn": en,
        "description": description,
        "state": state_field,
        "submitTime": plan.sub,
        "startTime": plan.t_start if st.started else None,
        "finishTime": plan.t_finish if st.status in ("SUCCESS", "FAILURE") else None,
        "imageUrl": image_url,
        "progress": st.progress,
        "failReason": plan.fail if st.status == "FAILURE" else None,
    }
    extras = {
        "buttons": _buttons(action, job) if success else [],
        "mode": mode,
        "seed": mj_seed if success else None,
        "job": job if success else None,
        "channel": channel,
        "bot_type": bot_type,
        "size": IMAGE_SIZE if success and image_url else None,
        "use_time": plan.t_finish - plan.t_start if st.started and record["finishTime"] else None,
        "parent": parent if action in CHILD_ACTIONS else None,
        "final_prompt": final_prompt,
    }
    return record, extras


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
