"""The task list's one FilterSet: the list, the gallery, the exports and /mj/task/list.

A bad value never fails the request by itself: django-filter leaves an invalid
parameter out of `cleaned_data`, so it filters nothing and the rest still apply. The
pages show such values as ignored (`form.errors`); the API answers 400 with them
(`form.refused()`).
"""

import re
from datetime import timedelta
from functools import cached_property

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.forms.utils import ErrorList
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks.db import search
from tasks.ingest import derive
from tasks.ingest.records import clean_text
from tasks.models import Task, TaskTag
from tasks.web import pager
from tasks.web.dates import OUT_OF_RANGE, parse_moment

# Time-range presets: the `range` parameter, a moving window ending now.
RANGES = {
    "1h": (timedelta(hours=1), _("Last hour")),
    "24h": (timedelta(hours=24), _("Last 24 hours")),
    "7d": (timedelta(days=7), _("Last 7 days")),
    "30d": (timedelta(days=30), _("Last 30 days")),
}
SORT_LABELS = {
    "-submitted": _("Newest first"),
    "submitted": _("Oldest first"),
    "-finished": _("Recently finished first"),
    "finished": _("Earliest finished first"),
    "-duration": _("Longest run first"),
    "duration": _("Shortest run first"),
}
FILTERS = (
    "status", "action", "q", "submitted_after", "submitted_before", "range", "source",
    "favourite", "tag", "pk",
)  # fmt: skip
MAX_VALUES = 50  # distinct status (or action) values one request may give
# Midjourney's parameters and who asked (tasks/ingest/derive.py): parameter -> column.
PARAMETER_COLUMNS = {
    "mode": "mode", "version": "version", "ar": "aspect", "bot": "bot", "account": "account",
    "caller": "caller",
}  # fmt: skip
FILTERS += tuple(PARAMETER_COLUMNS)
# What the chips count, with every other filter applied.
FACETS = ("status", "action", *PARAMETER_COLUMNS)
NOT_A_PAGE = _("Not a page of this list: the first page is shown.")
PK = re.compile(r"[0-9]{1,18}")  # a task's pk, in ASCII digits ("²".isdigit() too)
MAX_PKS = 500  # tasks one selection (pk=) may name


# Fields: one parameter each, parsed


class ValuesField(forms.Field):
    """A repeatable parameter (?status=A&status=B) of free strings: proxies invent new ones."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        # A NUL or a lone surrogate is stored as U+FFFD (records.clean_text): the value
        # finds what was stored for it, and never reaches the database (PostgreSQL
        # refuses a NUL in a parameter). A value longer than any stored one (64) stays:
        # it matches nothing, as it should.
        cleaned = list(dict.fromkeys(clean_text(str(item).strip()) for item in value))
        cleaned = [item for item in cleaned if item]
        if len(cleaned) > MAX_VALUES:
            raise ValidationError(
                _("Give at most %(max)d values."), code="max_values", params={"max": MAX_VALUES}
            )
        return cleaned


class PksField(forms.Field):
    """Tasks named by pk (?pk=1&pk=2): a selection of rows (tasks/curation/)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        values = [value] if isinstance(value, str) else value
        if len(values) > MAX_PKS or not all(PK.fullmatch(str(v)) for v in values):
            raise ValidationError(
                _("Give at most %(max)d task numbers."), code="pks", params={"max": MAX_PKS}
            )
        return list(dict.fromkeys(int(v) for v in values))


class SpelledValuesField(ValuesField):
    """A repeatable parameter whose values have one spelling, the one derive.py stores
    (`spell` gives it, or "" for what is no such value): "RELAXED" finds relax, "v 6.1"
    finds 6.1; a value that is none is refused, saying what one looks like."""

    def __init__(self, spell, expected, **kwargs):
        super().__init__(**kwargs)
        self.spell, self.expected = spell, expected

    def to_python(self, value):
        spelled = []
        for item in super().to_python(value):
            if not self.spell(item):
                raise ValidationError(
                    _("“%(value)s” is not %(expected)s"),
                    code="invalid",
                    params={"value": item[:40], "expected": self.expected},
                )
            spelled.append(self.spell(item))
        return list(dict.fromkeys(spelled))


class MomentField(forms.Field):
    """An ISO date or datetime (tasks.web.dates.parse_moment)."""

    def to_python(self, value):
        return parse_moment(value)


class CursorField(forms.Field):
    """A page's cursor (tasks.web.pager) as the position it names; a broken one is refused,
    so the page starts from the first and says so."""

    def to_python(self, value):
        if not value:
            return None
        position = pager.decode(value)
        if position is None:
            raise ValidationError(NOT_A_PAGE, code="not_a_page")
        return position


# Filters: what each parameter does to the queryset


class ValuesFilter(django_filters.Filter):
    field_class = ValuesField

    def __init__(self, **kwargs):
        super().__init__(lookup_expr="in", **kwargs)


class SpelledValuesFilter(ValuesFilter):
    field_class = SpelledValuesField


class MomentFilter(django_filters.Filter):
    field_class = MomentField


class PksFilter(django_filters.Filter):
    field_class = PksField


class SlugFilter(django_filters.CharFilter):
    field_class = forms.SlugField


class PlainChoiceFilter(django_filters.Filter):
    # Django's own ChoiceField: django-filter's adds an empty choice and a "null" value.
    field_class = forms.ChoiceField


class Param(django_filters.Filter):
    """A parameter of the list that filters nothing: the pager's sort and positions."""

    def filter(self, qs, value):
        return qs


class SortParam(Param):
    field_class = forms.ChoiceField


class CursorParam(Param):
    field_class = CursorField


class TaskFilterForm(forms.Form):
    """The base of the FilterSet's form: the rules between parameters, and the values a
    page shows."""

    def clean(self):
        data = super().clean()
        for name in ("submitted_after", "submitted_before"):
            for error in self.errors.get(name, ErrorList()).as_data():
                if error.code == OUT_OF_RANGE:
                    # The first or last moment there is: named on the page as ignored,
                    # it still leaves out tasks without a submit time, as a bound does.
                    data[name] = error.params["bound"]
        if data.get("submitted_after") or data.get("submitted_before"):
            # Dates someone typed win over a preset left in the URL: both at once would
            # silently cut the custom range to the preset's window.
            data["range"] = ""
        key = pager.SORTS[data.get("sort") or pager.DEFAULT_SORT][0]
        for name in ("cursor", "before"):
            position = data.get(name)
            if position is not None and not pager.fits(position, key):
                self.add_error(name, ValidationError(NOT_A_PAGE, code="not_a_page"))
        return data

    @cached_property
    def values(self):
        """Every parameter's value as the page shows it; an invalid one as if it were
        not given."""
        errors = self.errors  # validates the form
        cleaned = getattr(self, "cleaned_data", {})  # none when unbound
        data = {
            name: cleaned[name] if name in cleaned and name not in errors else field.to_python(None)
            for name, field in self.fields.items()
        }
        data["sort"] = data["sort"] or pager.DEFAULT_SORT
        return data

    def is_filtered(self):
        """Whether any filter applies (the page then offers to clear them)."""
        self.errors  # noqa: B018 (validates the form)
        return any(getattr(self, "cleaned_data", {}).get(name) for name in FILTERS)

    def refused(self):
        """{name: [messages]} of the values a strict reader (the API) refuses: all that a
        page names as ignored, but a bound beyond what a datetime holds, which filters as
        the first or last moment there is (see clean)."""
        refused = {}
        for name, errors in self.errors.as_data().items():
            messages = [m for error in errors if error.code != OUT_OF_RANGE for m in error]
            if messages:
                refused[name] = messages
        return refused


def range_choices():
    return [("", "")] + [(key, label) for key, (_, label) in RANGES.items()]


def sort_choices():
    return list(SORT_LABELS.items())


# Every filter is given its label and its choices as a function: django-filter copies its
# filters for each request, and would otherwise copy every translated label and derive
# each filter's label from the model again (a millisecond a request).
class TaskFilterSet(django_filters.FilterSet):
    status = ValuesFilter(label="status")
    action = ValuesFilter(label="action")
    # Text in prompt, promptEn, description, failReason, or the task id (tasks.db.search).
    q = django_filters.CharFilter(label="q", method="filter_text", max_length=200, strip=True)
    submitted_after = MomentFilter(
        label="submitted_after", field_name="submitted", lookup_expr="gte"
    )
    submitted_before = MomentFilter(
        label="submitted_before", field_name="submitted", lookup_expr="lt"
    )
    range = PlainChoiceFilter(label="range", method="filter_range", choices=range_choices)
    source = SlugFilter(label="source", field_name="source__name", max_length=50)
    # Midjourney's parameters and who asked, as derive.py stores them: any of the values
    # given for one, all of them across (each one's chips count with the others applied).
    mode = SpelledValuesFilter(
        label="mode", spell=derive.spell_mode, expected=_("fast, relax or turbo.")
    )
    version = SpelledValuesFilter(
        label="version", spell=derive.spell_version, expected=_("a version like 6.1 or niji 6.")
    )
    ar = SpelledValuesFilter(
        label="ar", field_name="aspect", spell=derive.spell_aspect,
        expected=_("an aspect ratio like 16:9."),
    )  # fmt: skip
    bot = SpelledValuesFilter(
        label="bot", spell=derive.spell_bot, expected=_("a bot like MID_JOURNEY or NIJI_JOURNEY.")
    )
    account = SpelledValuesFilter(
        label="account", spell=derive.spell_account,
        expected=_("an account's channel id, like 1300000000000000001."),
    )  # fmt: skip
    caller = SpelledValuesFilter(
        label="caller", spell=derive.spell_caller, expected=_("a caller (at most 200 characters).")
    )
    # Curation (tasks/curation/): the requesting user's own stars, the team's tags (any of
    # them), a selection of rows.
    favourite = PlainChoiceFilter(
        label="favourite", method="filter_favourite", choices=[("", ""), ("1", "1")]
    )
    tag = ValuesFilter(label="tag", method="filter_tag")
    pk = PksFilter(label="pk", field_name="pk", lookup_expr="in")
    # The order and the place in it: the pager's (tasks.web.pager), validated here with
    # the rest so a page names every value it ignores in one place.
    sort = SortParam(label="sort", choices=sort_choices)
    cursor = CursorParam(label="cursor")  # the page after this position
    before = CursorParam(label="before")  # the page that ends before this position

    class Meta:
        model = Task
        fields = []  # only the filters declared above
        form = TaskFilterForm

    def filter_queryset(self, queryset, exclude=()):
        """The queryset filtered by every valid parameter but those named in `exclude`
        (FACETS for the chips' counts)."""
        for name, value in self.form.cleaned_data.items():
            if name not in exclude:
                queryset = self.filters[name].filter(queryset, value)
        return queryset

    def facet_base(self, queryset):
        """`queryset` filtered by everything but the FACETS: what the chips count."""
        self.errors  # noqa: B018 (validates the form, as `qs` does)
        return self.filter_queryset(queryset, exclude=FACETS)

    def filter_text(self, queryset, name, value):
        text = self.text_search
        newest = {"walk": text.recent, "fetch": text.recent_by_id}.get(self.newest_hits_only)
        return queryset.filter(text.condition if newest is None else newest)

    @cached_property
    def text_search(self):
        # Built once per request: the page and the facet counts share it.
        return search.text_search(self.form.cleaned_data["q"])

    newest_hits_only = None  # see newest_first

    def newest_first(self, read, enough, most=False):
        """read() (which filters through this FilterSet and takes the newest tasks first)
        with the text search narrowed to its newest hits (search.TextSearch.recent; with
        `most`, for a read of most of them, recent_by_id), kept when `enough(result)`: then it
        is the result all hits give. Else read() again with all of them."""
        if self.form.values["q"] and self.text_search.recent is not None:
            self.newest_hits_only = "fetch" if most else "walk"
            try:
                result = read()
            finally:
                self.newest_hits_only = None
            if enough(result):
                return result
        return read()

    def filter_favourite(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            return queryset.none()
        return queryset.filter(favourites__user=user)

    def filter_tag(self, queryset, name, value):
        return queryset.filter(pk__in=TaskTag.objects.filter(tag__name__in=value).values("task"))

    def filter_range(self, queryset, name, value):
        return queryset.filter(submitted__gte=timezone.now() - RANGES[value][0])
