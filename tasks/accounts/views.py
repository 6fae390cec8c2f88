"""The Discord accounts' pages: every account of every source, and one account.

Both need a login and change nothing, so viewers read them as everyone does. What they
show was scrubbed of credentials before it was stored (tasks/ingest/credentials.py); the
raw record is masked once more on its way out, like a task's, for the sources' secrets.
"""

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_safe

from tasks.accounts.figures import Figures, daily_chart, figures_for
from tasks.models import Account, AccountSync
from tasks.redaction import Masker

PAGE_SIZE = 100
EVENTS_SHOWN = 200
LARGEST_PK = 2**63 - 1  # a larger <int:id> is no row, not a database error

# How the state chip sorts: working accounts first, gone ones last.
STATE_RANK = Case(
    When(gone_since__isnull=False, then=Value(4)),
    When(enabled=False, then=Value(3)),
    When(locked=True, then=Value(2)),
    When(fast_exhausted=True, then=Value(1)),
    default=Value(0),
    output_field=IntegerField(),
)
# ?sort=<key> (or -<key>, descending): the columns the list orders by.
SORTS = {
    "source": ("source__name", "name", "channel_id"),
    "name": ("name", "channel_id"),
    "state": ("state_rank", "source__name", "name"),
    "running": ("running", "source__name", "name"),
    "queued": ("queued", "source__name", "name"),
    "last_seen": ("last_seen", "name"),
    "first_seen": ("first_seen", "name"),
}
DEFAULT_SORT = "source"


def ordering(sort):
    """The order_by() of a ?sort= value; an unknown one is the default."""
    descending = sort.startswith("-")
    columns = SORTS.get(sort.lstrip("-")) or SORTS[DEFAULT_SORT]
    if not descending or sort.lstrip("-") not in SORTS:
        return list(columns)
    return [f"-{c}" for c in columns]


@login_required
@require_safe
def account_list(request):
    sort = request.GET.get("sort", DEFAULT_SORT)
    if sort.lstrip("-") not in SORTS:
        sort = DEFAULT_SORT
    accounts = (
        Account.objects.select_related("source")
        .defer("raw")
        .annotate(state_rank=STATE_RANK)
        .order_by(*ordering(sort), "pk")
    )
    shown = Paginator(accounts, PAGE_SIZE).get_page(request.GET.get("page"))
    figures = figures_for(a.channel_id for a in shown)
    rows = [(a, figures.get(a.channel_id) or Figures()) for a in shown]
    ctx = {
        "page": "accounts",
        "rows": rows,
        "shown": shown,
        "sort": sort,
        "sort_links": sort_links(sort),
        "no_enabled": Account.objects.sources_without_enabled_account(),
        "unavailable": unavailable(),
    }
    return render(request, "accounts/list.html", ctx)


def sort_links(current):
    """{key: the URL sorting by it}; the current key's link turns the order around."""
    links = {}
    for key in SORTS:
        target = f"-{key}" if current == key else key
        links[key] = reverse("accounts:list") + "?" + urlencode({"sort": target})
    return links


def unavailable():
    """(source name, reason) of each enabled source whose accounts could not be synced."""
    rows = AccountSync.objects.filter(available=False, source__enabled=True)
    rows = list(rows.order_by("source__name").values_list("source__name", "reason"))
    if not rows:
        return []  # nothing to mask: the sources' secrets are not read
    masker = Masker()
    return [(name, masker.plain(reason)) for name, reason in rows]


@login_required
@require_safe
def account_detail(request, id):
    if id > LARGEST_PK:
        raise Http404
    account = get_object_or_404(Account.objects.select_related("source"), pk=id)
    figures = figures_for([account.channel_id]).get(account.channel_id) or Figures()
    masker = Masker()
    try:
        raw = masker.value(json.loads(account.raw))
    except ValueError:
        raw = {}
    ctx = {
        "page": "accounts",
        "account": account,
        "figures": figures,
        "events": list(account.events.order_by("-seen", "-pk")[:EVENTS_SHOWN]),
        "chart": daily_chart(account.channel_id) if account.channel_id else None,
        "raw_pretty": json.dumps(raw, indent=2, ensure_ascii=False),
        "tasks_url": reverse("tasks:list") + "?" + urlencode({"account": account.channel_id}),
        "sync": AccountSync.objects.filter(source=account.source).first(),
    }
    return render(request, "accounts/detail.html", ctx)
