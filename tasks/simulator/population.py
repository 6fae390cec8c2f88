"""The random mix of tasks: a 30-day history for preloading and fresh tasks for a live demo.
IMAGINE dominates; child actions point at an earlier successful task, as on a real proxy."""

from collections import deque

from . import content
from .lifecycle import MAX_LIFETIME_S, NOT_START_S, QUEUE_S, RUN_S
from .payloads import GRID_ACTIONS

ACTIONS = (
    ("IMAGINE", 55),
    ("UPSCALE", 20),
    ("VARIATION", 7),
    ("REROLL", 3),
    ("DESCRIBE", 4),
    ("BLEND", 3),
    ("ZOOM", 3),
    ("PAN", 2),
    ("SHORTEN", 3),
)
_NAMES = [a for a, _ in ACTIONS]
_WEIGHTS = [w for _, w in ACTIONS]
FAIL_RATE = 0.1
HISTORY_DAYS = 30


def random_spec(rng):
    action = rng.choices(_NAMES, _WEIGHTS)[0]
    fail = rng.choice(content.FAIL_REASONS) if rng.random() < FAIL_RATE else None
    return action, rng.randrange(content.prompt_count()), fail


def history(n, now, rng, speed, new_plan):
    """n plans over the past 30 days, oldest first; a handful submitted seconds ago, so
    they are still waiting or running at `now`."""
    if n <= 0:
        return []
    running = min(5, max(1, n // 20))
    # submitted within the shortest possible lifetime, so certainly not finished yet
    shortest_ms = int((NOT_START_S[0] + QUEUE_S[0] + RUN_S[0]) * 1000 / speed)
    settled_ms = int(MAX_LIFETIME_S * 1000 / speed) + 1000
    start = now - HISTORY_DAYS * 86_400_000
    subs = sorted(rng.randrange(start, now - settled_ms) for _ in range(n - running))
    subs += sorted(now - rng.randrange(1, max(2, shortest_ms)) for _ in range(running))
    grids = deque(maxlen=50)  # recent successful grid results: parents for U/V/reroll
    upscales = deque(maxlen=50)
    plans = []
    for sub in subs:
        action, prompt, fail = random_spec(rng)
        parent = None
        if action not in ("IMAGINE", "DESCRIBE", "BLEND", "SHORTEN"):
            pool = upscales if action in ("ZOOM", "PAN") and upscales else grids
            ready = [p for p in pool if p.t_finish < sub]
            if ready:
                chosen = rng.choice(ready)
                parent, prompt = chosen.id, chosen.prompt
            else:
                action = "IMAGINE"
        plan = new_plan(sub, action, prompt, parent, fail, None)
        if not fail:
            if action in GRID_ACTIONS:
                grids.append(plan)
            elif action == "UPSCALE":
                upscales.append(plan)
        plans.append(plan)
    return plans
