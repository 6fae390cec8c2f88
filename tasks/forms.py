"""The task list's filters, parsed from the query string (shared by list, gallery, export)."""

from datetime import datetime, time, timedelta
from functools import cached_property

from django import forms
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

from . import search

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
            item = str(item).strip()
            if item and len(item) <= 64 and item not in cleaned:
                cleaned.append(item)
        return cleaned


class MomentField(forms.Field):
    """An ISO date or datetime; a date means its midnight in the site's time zone."""

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        if len(value) > 40:
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
        return moment


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

    def clean_sort(self):
        return self.cleaned_data.get("sort") or DEFAULT_SORT

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
