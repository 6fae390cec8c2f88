"""The chart of /usage/: tasks per day (per month over long periods), a bar each,
stacked by the values of the grouping that is not the day (the biggest few, the rest
as one), drawn as SVG like the overview's charts (tasks/templatetags/task_tags.py)."""

from collections import Counter
from datetime import timedelta

from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 160
SERIES = 6  # values drawn on their own; the others are stacked as one
DAILY_UP_TO = 62  # days; a longer period is drawn by month
# Fills as SVG attributes (no inline style): readable on light and dark backgrounds.
COLOURS = ("#3b5bdb", "#2b8a3e", "#e8590c", "#ae3ec9", "#1098ad", "#f08c00", "#868e96")


def draw(report, other_label, empty_label):
    """{"svg", "legend": [(colour, label)]} for a report, None when it has no tasks."""
    if not report.total.tasks:
        return None
    totals = Counter()
    for (_, value), n in report.by_day.items():
        totals[value] += n
    top = [value for value, _ in sorted(totals.items(), key=lambda i: (-i[1], str(i[0])))]
    shown, rest = top[:SERIES], top[SERIES:]
    monthly = (report.end - report.start).days >= DAILY_UP_TO
    buckets = bucket_starts(report.start, report.end, monthly)
    index = {start: i for i, start in enumerate(buckets)}
    stacks = [Counter() for _ in buckets]
    for (day, value), n in report.by_day.items():
        bucket = day.replace(day=1) if monthly else day
        stacks[index[bucket]][value if value not in rest else None] += n
    keys = [*shown, *([None] if rest else [])]
    colours = {key: COLOURS[min(i, len(COLOURS) - 1)] for i, key in enumerate(keys)}
    top_n = max(sum(stack.values()) for stack in stacks) or 1
    width = WIDTH / len(buckets)
    every = max(1, len(buckets) // 8)
    bars = []
    for i, (start, stack) in enumerate(zip(buckets, stacks, strict=True)):
        x, y = round(i * width + 1, 1), HEIGHT
        label = date_format(start, "Y-m" if monthly else "M j")
        parts = []
        for key in keys:
            if stack[key]:
                h = round(stack[key] / top_n * (HEIGHT - 14), 1)
                y = round(y - h, 1)
                parts.append((x, y, round(max(1.0, width - 2), 1), h, colours[key]))
        rects = format_html_join(
            "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>', parts
        )
        tick = ""
        if i % every == 0:
            tick = format_html(
                '<text class="tick" x="{}" y="{}">{}</text>',
                round(x + width / 2, 1),
                HEIGHT + 15,
                label,
            )
        bars.append(
            format_html(
                '<g class="bar"><title>{}: {}</title>{}{}</g>',
                label,
                sum(stack.values()),
                rects,
                tick,
            )
        )
    legend = [
        (colours[key], other_label if key is None else (text(key) or empty_label)) for key in keys
    ]
    return {"svg": SafeString("".join(bars)), "max": top_n, "legend": legend}


def bucket_starts(start, end, monthly):
    if not monthly:
        return [start + timedelta(days=i) for i in range((end - start).days + 1)]
    out, month = [], start.replace(day=1)
    while month <= end:
        out.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return out


def text(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
