"""Small formatting filters for the pages."""

import re
from datetime import timedelta

from django import template
from django.utils.html import escape, format_html, linebreaks
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from tasks.web import status

register = template.Library()

register.filter("status_class", status.status_class)


@register.filter
def duration(value):
    """A timedelta as people read it: 362 ms, 48 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if not isinstance(value, timedelta):
        return ""
    return seconds_text(value.total_seconds(), duration_formats())


def duration_formats():
    """The units' formats in the active language: a page writing thousands of durations
    translates them once (tasks/usage/table.py) and calls seconds_text."""
    return {
        "ms": _("%(n)d ms"),
        "s": _("%(n)s s"),
        "min": _("%(m)d min %(s)d s"),
        "h": _("%(h)d h %(m)d min"),
        "d": _("%(d)d d %(h)d h"),
    }


def seconds_text(seconds, formats):
    """duration() of a number of seconds, with duration_formats()."""
    if seconds < 0:
        return ""
    if seconds < 1:
        return formats["ms"] % {"n": round(seconds * 1000)}
    if seconds < 60:
        return formats["s"] % {"n": f"{seconds:.1f}".rstrip("0").rstrip(".")}
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return formats["min"] % {"m": minutes, "s": sec}
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return formats["h"] % {"h": hours, "m": minutes}
    days, hours = divmod(hours, 24)
    return formats["d"] % {"d": days, "h": hours}


# **bold** on one line, as Discord writes it; the text between is never empty or starred.
BOLD = re.compile(r"\*\*([^*\n]+?)\*\*")


@register.filter
def bot_text(value):
    """A bot's Discord message (SHORTEN's analysis, DESCRIBE's prompts) as HTML: escaped
    first, then **bold** made <strong>, blank lines paragraphs and line breaks <br>."""
    if not isinstance(value, str):
        return ""
    marked = BOLD.sub(r"<strong>\1</strong>", escape(value))  # \1 is escaped text
    return SafeString(linebreaks(marked, autoescape=False))


@register.filter
def percent(value, digits=1):
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f}%"


@register.simple_tag
def chart_bars(chart, success_word, failure_word):
    """The bars of a stats.bars() chart as SVG elements.

    Made here rather than with template tags: 78 bars of them cost 10 ms an overview.
    Numbers go in with str(), never localised (a decimal comma would break the SVG).
    """
    bars = []
    for bar in chart["bars"]:
        stack = [
            format_html(
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}"></rect>',
                part["kind"],
                bar["x"],
                part["y"],
                bar["w"],
                part["h"],
            )
            for part in bar["stack"]
        ]
        if bar["tick"]:
            stack.append(
                format_html(
                    '<text class="tick" x="{}" y="{}">{}</text>',
                    bar["text_x"],
                    chart["tick_y"],
                    bar["label"],
                )
            )
        bars.append(
            format_html(
                '<g class="bar"><title>{}: {} ({} {}, {} {})</title>'
                '<rect class="hit" x="{}" y="0" width="{}" height="{}"></rect>{}</g>',
                bar["label"],
                bar["total"],
                bar["success"],
                success_word,
                bar["failure"],
                failure_word,
                bar["x"],
                bar["w"],
                chart["height"],
                SafeString("".join(stack)),  # each piece escaped by format_html
            )
        )
    return SafeString("\n".join(bars))
