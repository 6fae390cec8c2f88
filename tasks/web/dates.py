"""The one parser for the dates and times people type: the list's filters, on the pages
and in the mirror API alike."""

from datetime import UTC, datetime, time

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _

# The code of a date beyond what a datetime holds once moved to UTC or to the site's time
# zone (within hours of year 1 or 9999). The error's `bound` is the first or the last
# moment there is, which the filter uses instead: as good as no bound, but for tasks
# without a submit time. A page shows it as ignored; the API serves it without a word.
OUT_OF_RANGE = "out_of_range"
FIRST, LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
NOT_A_DATE = _("Enter a date (2024-05-01) or a date and time.")


def parse_moment(text):
    """An ISO date or datetime as an aware datetime in UTC, or None for an empty text.

    A date means its midnight; a time without an offset is in the site's TIME_ZONE.
    Raises ValidationError: code `invalid` for what is no date, OUT_OF_RANGE for one
    beyond what a datetime holds (with the bound it stands for).
    """
    text = (text or "").strip()
    if not text:
        return None
    if len(text) > 40 or "\x00" in text:
        raise ValidationError(NOT_A_DATE, code="invalid")
    try:
        # Django's parser takes what datetime.fromisoformat takes, and a little more
        # (2024-5-1 8:30, +0800); a space for the T as well.
        moment = parse_datetime(text.replace(" ", "T", 1))
    except ValueError:  # well formed, but no such day or offset (2024-02-30, +99:99)
        moment = None
    if moment is None:
        try:
            day = parse_date(text)
        except ValueError:
            day = None
        if day is None:
            raise ValidationError(NOT_A_DATE, code="invalid")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    typed, moment = moment, in_utc(moment)
    if moment is None:
        raise ValidationError(
            _("Enter a date between the years 1 and 9999."),
            code=OUT_OF_RANGE,
            params={"bound": FIRST if typed.year < 5000 else LAST},
        )
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
