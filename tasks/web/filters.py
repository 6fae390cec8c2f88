"""The task list's filters, parsed from the query string (shared by list, gallery, export)."""

import re
from datetime import UTC, datetime, time, timedelta
from functools import cached_property

from django import forms
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

from tasks.db import search
from tasks.ingest.records import clean_text

# Time-range presets: the `range` parameter, a moving window ending now.
RANGES = {
    "1h": (timedelta(hours=1), _("Last hour")),
    "24h": (timedelta(hours=24), _("Last 24 hours")),
    "7d": (timedelta(days=7), _("Last 7 days")),
    "30d": (timedelta(days=30), _("Last 30 days")),
}

# sort parameter -> (key, descending). Every sort ends with the id, so keysets are total.
SORTS = {
    "-submitted": ("submitted", True),
    "submitted": ("submitted", False),
    "-finished": ("finished", True),
    "finished": ("finished", False),
    "-duration": ("duration", True),
    "duration": ("duration", False),
}
SORT_LABELS = {
    "-submitted": _("Newest first"),
    "submitted": _("Oldest first"),
    "-finished": _("Recently finished first"),
    "finished": _("Earliest finished first"),
    "-duration": _("Longest run first"),
    "duration": _("Shortest run first"),
}
DEFAULT_SORT = "-submitted"
MAX_VALUES = 50  # repeated status/action values accepted


def duration_expression():
    return ExpressionWrapper(F("finished") - F("started"), output_field=DurationField())


class StringListField(forms.Field):
    """A repeatable parameter (?status=A&status=B) of free strings: proxies invent new ones."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        cleaned = []
        for item in value[:MAX_VALUES]:
            # A NUL or a lone surrogate is stored as U+FFFD (records.clean_text): the value
            # finds what was stored for it, and never reaches the database (PostgreSQL
            # refuses a NUL in a parameter).
            item = clean_text(str(item).strip())
            if item and len(item) <= 64 and item not in cleaned:
                cleaned.append(item)
        return cleaned


class MomentField(forms.Field):
    """An ISO date or datetime; a date means its midnight in the site's time zone."""

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        if len(value) > 40 or "\x00" in value:
            raise forms.ValidationError(_("Enter a date (2024-05-01) or a date and time."))
        try:
            moment = parse_datetime(value.replace(" ", "T", 1))
        except ValueError:
            moment = None
        if moment is None:
            try:
                day = parse_date(value)
            except ValueError:
                day = None
            if day is None:
                raise forms.ValidationError(_("Enter a date (2024-05-01) or a date and time."))
            moment = datetime.combine(day, time.min)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        moment = in_utc(moment)
        if moment is None:
            raise forms.ValidationError(_("Enter a date between the years 1 and 9999."))
        return moment


def in_utc(moment):
    """An aware datetime in UTC, as the database compares it (PostgreSQL takes no offset
    beyond 15:59, Python up to 23:59); None when it is no datetime in UTC or in the
    site's time zone, where the page shows it (within hours of year 1 or 9999)."""
    try:
        timezone.localtime(moment)
        return moment.astimezone(UTC)
    except OverflowError:
        return None


# Where a page of the list starts (views.make_cursor writes them): `k~<key>~<id>` after
# the row with this sort key (an ISO datetime, or microseconds for the duration sort) and
# id; `n~~<id>` among the rows without a key, which come last. Ids are what a bigint holds.
CURSOR = re.compile(r"(?:k~([0-9T:.+Z-]{1,40})|n~)~(-?[0-9]{1,18})")
MICROS = re.compile(r"-?[0-9]{1,18}")


class CursorField(forms.Field):
    """A page's cursor (CURSOR) as it is written; a broken one is refused, so the page
    starts from the first and says so."""

    def to_python(self, value):
        value = value or ""
        if not value:
            return None
        if parse_cursor(value) is None:
            raise forms.ValidationError(_("Not a page of this list: the first page is shown."))
        return value


def parse_cursor(cursor, key=None):
    """(phase, key value, id) of a cursor, or None when it is broken. Phase 1 is among the
    rows without a key. With `key` (the sort's), a key value of the other kind (a duration
    for a time, or the reverse) is broken too."""
    match = CURSOR.fullmatch(cursor or "")
    if match is None:
        return None
    text, pk = match.groups()
    pk = int(pk)
    if text is None:
        return 1, None, pk
    if MICROS.fullmatch(text):
        if key not in (None, "duration"):
            return None
        try:
            return 0, timedelta(microseconds=int(text)), pk
        except OverflowError:
            return None
    if key == "duration":
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:
        return None
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    moment = in_utc(moment)
    return None if moment is None else (0, moment, pk)


def cursor_of_sort(cursor, sort):
    """The cursor if it is one of this sort's pages (another sort's keys may be of
    another kind: a duration for a time); None when there is none."""
    if cursor and parse_cursor(cursor, SORTS[sort or DEFAULT_SORT][0]) is None:
        raise forms.ValidationError(_("Not a page of this list: the first page is shown."))
    return cursor or None


class TaskFilterForm(forms.Form):
    status = StringListField(required=False)
    action = StringListField(required=False)
    q = forms.CharField(required=False, max_length=200, strip=True)
    submitted_after = MomentField(required=False)
    submitted_before = MomentField(required=False)
    range = forms.ChoiceField(
        required=False, choices=[("", "")] + [(k, v[1]) for k, v in RANGES.items()]
    )
    source = forms.SlugField(required=False, max_length=50)
    sort = forms.ChoiceField(required=False, choices=list(SORT_LABELS.items()))
    # The page: after the row of `cursor`, or the page that ends before the row of `before`.
    cursor = CursorField(required=False)
    before = CursorField(required=False)

    def clean_sort(self):
        return self.cleaned_data.get("sort") or DEFAULT_SORT

    def clean_cursor(self):
        return cursor_of_sort(self.cleaned_data.get("cursor"), self.cleaned_data.get("sort"))

    def clean_before(self):
        return cursor_of_sort(self.cleaned_data.get("before"), self.cleaned_data.get("sort"))

    @cached_property
    def values(self):
        # Invalid fields are dropped one by one, so a bad date does not undo the rest.
        data = {}
        for name, field in self.fields.items():
            raw = field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            try:
                data[name] = field.clean(raw)
            except forms.ValidationError:
                data[name] = field.clean(None) if not field.required else None
        data["sort"] = data.get("sort") or DEFAULT_SORT
        for name in ("cursor", "before"):
            try:
                data[name] = cursor_of_sort(data[name], data["sort"])
            except forms.ValidationError:
                data[name] = None
        if data.get("submitted_after") or data.get("submitted_before"):
            # Dates someone typed win over a preset left in the URL: both at once would
            # silently cut the custom range to the preset's window.
            data["range"] = ""
        return data

    def filter(self, qs, facets=True, now=None):
        """Apply every filter; without `facets`, leave status and action out (for counts)."""
        v = self.values
        if facets and v["status"]:
            qs = qs.filter(status__in=v["status"])
        if facets and v["action"]:
            qs = qs.filter(action__in=v["action"])
        if v["source"]:
            qs = qs.filter(source__name=v["source"])
        after = v["submitted_after"]
        if v["range"] in RANGES:  # never set together with a date (see values)
            after = (now or timezone.now()) - RANGES[v["range"]][0]
        if after:
            qs = qs.filter(submitted__gte=after)
        if v["submitted_before"]:
            qs = qs.filter(submitted__lt=v["submitted_before"])
        if v["q"]:
            qs = qs.filter(self.text_condition)
        return qs

    @cached_property
    def text_condition(self):
        # Built once per request: the page and the facet counts share it.
        return search.text_filter(self.values["q"])

    def is_filtered(self):
        v = self.values
        return any(v[name] for name in ("status", "action", "q", "source", "range")) or any(
            v[name] for name in ("submitted_after", "submitted_before")
        )
