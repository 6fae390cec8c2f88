"""The admin site: Django's, except that a changelist filters only as its sidebar offers.

Django's changelist takes a lookup on any of a model's own fields from the query string
(`?secret__startswith=S3`), offered or not. Counting the rows that match such a filter
reads a hidden column a character at a time (a viewer recovered a source's secret and
notify-hook token that way), and `__regex` on a large text column holds a web worker for
minutes. On this site every registered ModelAdmin, Django's and django-q2's included,
allows only the parameters its own list filters and date hierarchy use; anything else is
refused with a 400 (DisallowedModelAdminLookup), for every user, superusers included.
"""

from django.contrib.admin import AdminSite, ListFilter, ModelAdmin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist

# The lookups that Django's field filters put in the query string after a field_path
# (Boolean, Choices: exact and isnull; AllValues: the bare path and isnull; Date: gte,
# lt, isnull; Empty: isempty).
FIELD_FILTER_LOOKUPS = ("exact", "isnull", "gte", "lt", "isempty")
DATE_HIERARCHY_LOOKUPS = ("year", "month", "day")


class OfferedFiltersOnly:
    """Only the filters the changelist offers; mixed into every ModelAdmin of the site."""

    def lookup_allowed(self, lookup, value, request):
        # No text column of PostgreSQL can hold a NUL: such a value is a 400, not a 500.
        return lookup in offered_lookups(self, request) and "\x00" not in value


def offered_lookups(model_admin, request):
    """Every query-string parameter the model admin's list filters can set."""
    offered = set()
    if model_admin.date_hierarchy:
        offered.update(f"{model_admin.date_hierarchy}__{part}" for part in DATE_HIERARCHY_LOOKUPS)
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type) and issubclass(item, ListFilter):
            # A SimpleListFilter reads its parameter_name and validates it itself.
            offered.add(getattr(item, "parameter_name", None))
            continue
        path = item[0] if isinstance(item, (list, tuple)) else item
        offered.add(path)
        offered.update(f"{path}__{lookup}" for lookup in FIELD_FILTER_LOOKUPS)
        try:
            field = get_fields_from_path(model_admin.model, path)[-1]
        except FieldDoesNotExist:
            continue
        target = getattr(field, "target_field", None)
        if field.is_relation and target is not None:
            offered.add(f"{path}__{target.name}__exact")  # RelatedFieldListFilter
    offered.discard(None)
    return offered


class SiteWithOfferedFiltersOnly(AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, OfferedFiltersOnly):
            admin_class = type(
                admin_class.__name__,
                (OfferedFiltersOnly, admin_class),
                {"__module__": admin_class.__module__},
            )
        super().register(model_or_iterable, admin_class, **options)


class MjsiteAdminConfig(AdminConfig):
    default_site = "mjsite.admin_site.SiteWithOfferedFiltersOnly"
