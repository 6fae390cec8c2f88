"""Task plans and the state a plan is in at a given moment.

A plan is the compact, immutable description of one task (a few ints and strings); every
state and record is computed from it and the clock, so 100,000 tasks cost little memory
and the simulator never has to "tick".

Timing windows every successful task respects (seconds after submission, divided by speed):
NOT_START for [0, 1) at least, SUBMITTED at 3 for sure, IN_PROGRESS at 23 for sure,
finished by MAX_LIFETIME_S.
"""

import random

NOT_START_S = (1, 3)
QUEUE_S = (3, 20)
RUN_S = (20, 60)
MAX_LIFETIME_S = NOT_START_S[1] + QUEUE_S[1] + RUN_S[1]

# The first step is the "0%" novicezk reports when the job starts; the rest carry a preview.
PROGRESS = ("0%", "15%", "31%", "46%", "62%", "78%", "93%")
STEPS = len(PROGRESS)

RANK = {"NOT_START": 0, "SUBMITTED": 1, "MODAL": 2, "IN_PROGRESS": 3}
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCEL"})
WAITING = frozenset(RANK)

BANNED = "Banned prompt detected"
TIMEOUT = "任务超时"
FORM = "Invalid Form Body"


class Plan:
    # action and fail hold shared constant strings; prompt is an index into content.PROMPTS
    # or the caller's own text; fields are submit()'s overrides (rare, so usually None).
    __slots__ = (
        "id",
        "sub",
        "t_submitted",
        "t_start",
        "t_end",
        "t_finish",
        "action",
        "prompt",
        "parent",
        "fail",
        "rs",
        "fields",
    )

    def is_finished(self, now):
        return now >= self.t_finish


def make_plan(task_id, sub, rs, speed, action, prompt, parent=None, fail=None, fields=None):
    r = random.Random(rs)
    p = Plan()
    p.id, p.sub, p.rs = task_id, sub, rs
    p.action, p.prompt, p.parent, p.fail, p.fields = action, prompt, parent, fail, fields
    p.t_submitted = sub + _ms(r.uniform(*NOT_START_S), speed)
    p.t_start = p.t_submitted + _ms(r.uniform(*QUEUE_S), speed)
    p.t_end = p.t_start + max(STEPS, _ms(r.uniform(*RUN_S), speed))
    run = p.t_end - p.t_start
    if fail is None:
        p.t_finish = p.t_end
    elif fail == BANNED:
        # refused before it starts: a FAILURE with no startTime
        p.t_finish = p.t_start
    elif fail == FORM:
        # seen in the wild: failed a few hundred ms after it started
        p.t_finish = p.t_start + max(1, min(run - 1, _ms(r.uniform(0.2, 0.5), speed)))
    elif fail == TIMEOUT:
        p.t_finish = p.t_end
    else:
        p.t_finish = p.t_start + max(1, int(run * r.uniform(0.1, 0.9)))
    return p


def _ms(seconds, speed):
    return int(seconds * 1000 / speed)


class State:
    __slots__ = ("status", "step", "step_ms", "started")

    def __init__(self, status, step=-1, step_ms=None, started=False):
        self.status = status
        self.step = step  # index into PROGRESS while running (also the last step a failure saw)
        self.step_ms = step_ms  # when the current progress step began (a preview's issue time)
        self.started = started

    @property
    def progress(self):
        if self.status == "NOT_START":
            return None
        if self.status == "SUBMITTED":
            return "0%"
        if self.status == "IN_PROGRESS":
            return PROGRESS[self.step]
        return "100%" if self.status == "SUCCESS" else ""


def state_at(p, now):
    if now < p.t_submitted:
        return State("NOT_START")
    if now < p.t_start and now < p.t_finish:
        return State("SUBMITTED")
    if now >= p.t_finish:
        status = "FAILURE" if p.fail else "SUCCESS"
        return State(status, _step(p, p.t_finish - 1), None, p.t_finish > p.t_start)
    step = _step(p, now)
    return State("IN_PROGRESS", step, p.t_start + step * (p.t_end - p.t_start) // STEPS, True)


def _step(p, now):
    if now < p.t_start:
        return -1
    return min(STEPS - 1, (now - p.t_start) * STEPS // (p.t_end - p.t_start))


def rank(status, progress):
    # Order used by the notifier to drop stale changes: state first, then progress.
    if not isinstance(status, str):  # put() records may hold anything
        return (-1, -1.0)
    base = RANK.get(status, 4 if status in FINISHED else -1)
    try:
        pct = float(str(progress).rstrip("%"))
    except (TypeError, ValueError):
        pct = -1.0
    return (base, pct)
