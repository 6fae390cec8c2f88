"""Pages for people: overview, task list, gallery, detail. All need a login."""

import json
import re
from collections import Counter
from datetime import timedelta
from itertools import compress
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import connection
from django.db.models import Case, Value, When
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_POST

from tasks.archive.display import image_lost, large_url, thumb_size, thumb_url
from tasks.db import search
from tasks.ingest import sync
from tasks.ingest.derive import PARENT_IN_DESCRIPTION
from tasks.ingest.json_items import too_deep
from tasks.ingest.records import ID_PATTERN
from tasks.models import Account, Source, SyncRun, Task
from tasks.redaction import SECRET_FIELDS, Masker, secret_values
from tasks.reports import overview as stats
from tasks.web import pager
from tasks.web.filters import PARAMETER_COLUMNS, RANGES, SORT_LABELS, TaskFilterSet
from tasks.web.pager import SORT_WINDOW, SORTS, make_cursor
from tasks.web.status import status_class

PAGE_SIZE = 50
GALLERY_PAGE_SIZE = 60
# Facet counts look at the newest this many matching tasks. Each is a read of its row (the
# parameter columns are not in the list's index) or, with a text search, an index probe:
# 10,000 cost 38 ms at a million tasks on SQLite, 2,000 cost 9 ms.
FACET_SAMPLE = 2_000
LIVE_MAX = 100  # tasks one live poll may ask for
LIVE_PK = re.compile(r"[0-9]{1,18}")
RECENT = 12  # tasks on the overview
PARENT_WINDOW = timedelta(days=1)  # referencedMessageId is looked up this far back


# Pages


@login_required
def overview(request):
    masker = Masker()
    recent = Task.objects.for_list().order_by("-submitted", "-id")[:RECENT]
    recent = decorate(list(recent), masker)
    figures = stats.overview()
    figures = {**figures, "reasons": [(masker.plain(r), n) for r, n in figures["reasons"]]}
    ctx = {
        "page": "overview",
        "stats": figures,
        "recent": recent,
        "live_pks": [t.pk for t in recent if t.is_running],
    }
    return render(request, "tasks/overview.html", ctx)


@login_required
def task_list(request):
    return list_page(request, "tasks/list.html", PAGE_SIZE, "list")


@login_required
def gallery(request):
    return list_page(request, "tasks/gallery.html", GALLERY_PAGE_SIZE, "gallery")


def list_page(request, template, size, page):
    filters = TaskFilterSet(request.GET, queryset=Task.objects.for_list(), request=request)
    values = filters.form.values
    images_only = page == "gallery"
    shown = page_of(filters, size, images_only)
    rows, sort_key = shown.rows, SORTS[values["sort"]][0]
    # The sources' names for the filter, and their secrets for the masking: one query.
    sources = list(Source.objects.order_by("name").values_list("name", *SECRET_FIELDS))
    masker = Masker(secret_values(row[1:] for row in sources))
    decorate(rows, masker)
    facets, sample_size, capped = facet_counts(filters, request, masker, images_only)
    ctx = {
        "page": page,
        "form": filters.form,
        "values": values,
        "tasks": rows,
        "next_cursor": pager.encode(shown.next),
        # The previous page ends before this page's first row.
        "first_cursor": make_cursor(rows[0], sort_key) if shown.after and rows else None,
        "is_first_page": not shown.after,
        "statuses": facets.pop("status"),
        "actions": facets.pop("action"),
        # Midjourney's parameters and who asked: a row each, when some task has a value.
        "parameter_facets": [
            {"name": name, "label": PARAMETER_LABELS[name], "chips": chips}
            for name, chips in facets.items()
            if chips
        ],
        "facets_capped": capped,
        "facet_sample": sample_size,
        "sort_window": SORT_WINDOW if sort_key != "submitted" else None,
        "sources": [row[0] for row in sources],
        "ranges": [(key, label) for key, (_, label) in RANGES.items()],
        "sorts": list(SORT_LABELS.items()),
        "live_pks": [t.pk for t in rows if not t.is_finished][:LIVE_MAX],
        "export_query": url_without(request)[1:],
        "any_time_url": url_without(request, "range", "submitted_after", "submitted_before"),
    }
    return render(request, template, ctx)


def page_of(filters, size, images_only):
    """The page of tasks the request asks for. The first page, newest first, is read from a
    text search's newest hits when they fill it (TaskFilterSet.newest_first)."""
    values = filters.form.values

    def read():
        qs = filters.filter_queryset(filters.queryset.all())
        if images_only:
            qs = with_image(qs)
        # A broken cursor is left out of the values (the page says so): the first page.
        after, before = values["cursor"], values["before"]
        return pager.page(qs, values["sort"], size, after=after, before=before)

    if (
        values["sort"] == pager.DEFAULT_SORT
        and values["cursor"] is None
        and values["before"] is None
    ):
        return filters.newest_first(read, enough=lambda shown: shown.next is not None)
    return read()


def with_image(qs):
    """The tasks the gallery shows: those with an image link or an archived thumbnail."""
    return qs.exclude(image_url="", thumb_file="")


@login_required
def list_live(request):
    """The rows of unfinished tasks, for the list's poll (htmx, every 2 s)."""
    # Ids a bigint holds, in ASCII digits ("²".isdigit() too): anything else is ignored.
    pks = [int(v) for v in request.GET.getlist("pk")[:LIVE_MAX] if LIVE_PK.fullmatch(v)]
    tasks = Task.objects.for_list().filter(pk__in=pks).order_by("-submitted", "-id")
    tasks = decorate(list(tasks), Masker())
    ctx = {
        "tasks": tasks,
        "live_pks": [t.pk for t in tasks if not t.is_finished],
        "view": request.GET.get("view", "list"),
    }
    return render(request, "tasks/_live_rows.html", ctx)


@login_required
def task_detail(request, task_id):
    task, others = find_task(request, task_id)
    masker = Masker()
    # Masked as decoded values: a secret with a quote or a backslash is found as it is,
    # not as json.dumps escaped it.
    raw = masker.value(parse_raw(task.raw))
    decorate([task], masker)
    result = result_text(task)
    parent = parent_of(task)
    ctx = {
        "page": "detail",
        "task": task,
        "others": others,
        # A record stored before it could be decoded (too deep, say) is shown as its text.
        "raw_pretty": raw
        if isinstance(raw, str)
        else json.dumps(raw, indent=2, ensure_ascii=False),
        "properties": list(as_text(task.properties)),
        "prompt_rows": prompt_rows(task, result),
        "result": result,
        "buttons": buttons(raw),
        "extra_fields": extra_fields(raw),
        "events": timeline(task),
        "parent": parent and masker.task(parent),
        "children": [masker.task(child) for child in children_of(task)],
        "can_refresh": request.user.has_perm("tasks.change_task"),
        "account": account_of(task),
    }
    return render(request, "tasks/detail.html", ctx)


def account_of(task):
    """The Discord account that ran a task, its source's first (a channel may be seen
    by several sources); None when the task names none or no account was synced."""
    if not task.account:
        return None
    mine = Case(When(source_id=task.source_id, then=Value(0)), default=Value(1))
    return Account.objects.filter(channel_id=task.account).order_by(mine, "pk").first()


@login_required
def detail_live(request, task_id):
    """The changing part of the detail page, for its poll while the task runs."""
    task, _others = find_task(request, task_id)
    ctx = {"task": decorate([task], Masker())[0], "events": timeline(task)}
    return render(request, "tasks/_detail_live.html", ctx)


@login_required
@require_POST
@permission_required("tasks.change_task", raise_exception=True)
def refresh(request, task_id):
    task, _others = find_task(request, task_id)
    # Through the sync, never the client: the same rules (no going backwards) apply.
    run = sync.refresh_tasks(task.source, [task.task_id])
    if run.outcome == SyncRun.Outcome.OK:
        if run.gone:
            messages.warning(request, _("The proxy no longer has this task; the mirror keeps it."))
        elif run.updated:
            messages.success(request, _("Refreshed from the proxy: the task changed."))
        else:
            messages.info(request, _("Refreshed from the proxy: nothing new."))
    else:
        messages.error(request, _("The proxy could not be asked: %(error)s") % {"error": run.error})
    return redirect(task.get_absolute_url())


def url_without(request, *names, drop=None):
    """ "?query" of this request without the cursor, the named parameters, and one
    (name, value) pair `drop`: filter links start again from the first page."""
    params = [
        (k, v)
        for k, values in request.GET.lists()
        if k not in ("cursor", "before") and k not in names
        for v in values
        if (k, v) != drop
    ]
    return "?" + urlencode(params)


# Facets: the newest FACET_SAMPLE matching tasks,
# filtered by everything but the facets, read as columns and counted here: each facet's
# chips count that sample with the other facets' choices applied. One GROUP BY over all of
# them in SQL would sort by every column, and callers make thousands of groups.

FACET_COLUMNS = {"status": "status", "action": "action", **PARAMETER_COLUMNS}
PARAMETER_LABELS = {
    "mode": _lazy("Mode"),
    "version": _lazy("Version"),
    "ar": _lazy("Aspect ratio"),
    "bot": _lazy("Bot"),
    "account": _lazy("Account"),
    "caller": _lazy("Caller"),
}
PARAMETER_CHIPS = 12  # a parameter's most common values shown (callers may be thousands)


def facet_counts(filters, request, masker, images_only=False):
    """({facet: chips}, sample size, whether the sample was full)."""
    values = filters.form.values
    size = FACET_SAMPLE
    columns = list(FACET_COLUMNS.values())

    def read():
        base = filters.facet_base(Task.objects.all())
        if images_only:  # the gallery's chips count the cards they lead to
            base = with_image(base)
        # In the list's order (tasks.web.pager): tasks without a submit time last, where
        # PostgreSQL's DESC would put them first.
        keyed = base.filter(submitted__isnull=False).order_by("-submitted", "-id")
        tail = base.filter(submitted__isnull=True).order_by("-id")
        parts = [keyed.values_list(*columns)[:size], tail.values_list(*columns)[:size]]
        return plain_rows(parts)[:size]

    rows = filters.newest_first(read, enough=lambda rows: len(rows) >= size, most=True)
    values_of = list(zip(*rows, strict=True)) or [()] * len(columns)
    chosen = [set(values[name]) for name in FACET_COLUMNS]
    # For each facet with a choice, whether each sampled task has one of the chosen values.
    masks = {i: [v in chosen[i] for v in values_of[i]] for i in range(len(columns)) if chosen[i]}
    admitted = all_of(list(masks.values()))
    counts = []
    for i, facet_values in enumerate(values_of):
        mask = all_of([m for j, m in masks.items() if j != i]) if i in masks else admitted
        counts.append(Counter(facet_values if mask is None else compress(facet_values, mask)))
    facets = {}
    for i, name in enumerate(FACET_COLUMNS):
        for value in chosen[i]:
            counts[i].setdefault(value, 0)
        if name in PARAMETER_COLUMNS:
            counts[i] = parameter_counts(counts[i], chosen[i], masker)
        facets[name] = chips(request, name, counts[i], chosen[i])
    return facets, size, len(rows) >= size


def plain_rows(querysets):
    """The rows of these querysets, one after the other, as plain tuples (the ORM's rows cost
    more than the counting), from one query."""
    selects, params = [], []
    for n, qs in enumerate(querysets):
        sql, qs_params = qs.query.sql_with_params()
        # The ORM's own SQL, its values bound parameters.
        selects.append(f"SELECT {n} AS part, * FROM ({sql}) AS part{n}")  # noqa: S608
        params += qs_params
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects), params)
        rows = sorted(cursor.fetchall(), key=lambda row: row[0])  # stable: each one's order
    return [row[1:] for row in rows]


def all_of(masks):
    """The tasks every one of these masks admits (None: no mask, all of them)."""
    if len(masks) <= 1:
        return masks[0] if masks else None
    return [all(admits) for admits in zip(*masks, strict=True)]


def parameter_counts(counts, chosen, masker):
    """A parameter's chips: its most common values and those chosen; a task without the
    parameter ("") has no chip (nothing filters for it), nor has a value that holds a
    source's secret (a caller's own tag could), even when chosen."""
    shown = {}
    # The top few (a heap) usually hold enough; all of them, sorted, only when they do not.
    for candidates in (counts.most_common(2 * PARAMETER_CHIPS), counts.most_common()):
        for value, n in candidates:
            if len(shown) < PARAMETER_CHIPS and value and masker.plain(value) == value:
                shown[value] = n
        if len(shown) == PARAMETER_CHIPS or len(candidates) == len(counts):
            break
    return shown | {value: counts[value] for value in chosen if masker.plain(value) == value}


def chips(request, name, counts, chosen):
    out = []
    for value, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        selected = value in chosen
        url = url_without(request, drop=(name, value))
        if not selected:
            url += ("&" if len(url) > 1 else "") + urlencode({name: value})
        out.append(
            {"value": value, "label": value or "—", "n": n, "selected": selected, "url": url}
        )
    return out


# What a row or the detail page shows


def decorate(tasks, masker):
    """Give each task what its templates show: its text masked (tasks/redaction.py), image
    links, state, duration. No queries.

    The strings a row repeats (its URL, times, captions) are made here once: template
    filters per row cost more than the page's database work.
    """
    now = timezone.now()
    for task in tasks:
        masker.task(task)
        task.thumb = thumb_url(task, now)
        task.large = large_url(task, now) or task.thumb
        task.size = thumb_size(task) or (160, 160)
        task.lost = image_lost(task)
        # A link we may not show any more (expired, or not http) and no copy of it.
        task.expired = not task.thumb and not task.lost and bool(task.image_url)
        task.is_running = not task.is_finished
        task.queue_wait = span(task.submitted, task.started)
        task.run_time = span(task.started, task.finished)
        task.excerpt = (task.prompt or task.description or "")[:160]
        task.url = task.get_absolute_url()
        task.status_css = status_class(task.status)
        task.submitted_when = moment(task.submitted, now)
    return tasks


def moment(value, now):
    """A datetime as a row shows it: ISO for <time>, local text, and how long ago."""
    if value is None:
        return None
    local = timezone.localtime(value)
    return {
        "iso": local.isoformat(),
        "text": local.strftime("%Y-%m-%d %H:%M:%S"),
        "title": f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}",
        "ago": _("%(ago)s ago") % {"ago": timesince(value, now)},
    }


def span(start, end):
    if start and end and end >= start:
        return end - start
    return None


def find_task(request, task_id):
    if not ID_PATTERN.match(task_id):
        raise Http404("No such task")  # no stored id is like it (nor holds a NUL)
    tasks = list(
        Task.objects.select_related("source").filter(task_id=task_id).order_by("source__name")
    )
    if not tasks:
        raise Http404("No such task")
    wanted = request.GET.get("source") or request.POST.get("source")
    task = tasks[0]
    if wanted:
        task = next((t for t in tasks if t.source.name == wanted), None)
        if task is None:
            raise Http404("No such task in that source")
    return task, [t.source.name for t in tasks if t is not task]


def parse_raw(text):
    """A stored record decoded for the page, or its text when it is no JSON or nests too
    deep to walk (a record stored before records.MAX_DEPTH): decoding, masking and
    indenting it would each run into Python's recursion limit."""
    if not isinstance(text, str) or too_deep(text) is not None:
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


RESULT_ACTIONS = ("DESCRIBE", "SHORTEN")  # their result is the bot's text, not a picture


def result_text(task):
    """What the detail page shows under the prompts: a DESCRIBE's prompts, a SHORTEN's
    analysis (the bot's Discord text, with its **bold**), or another task's finalPrompt
    when it says more than the prompts do."""
    value = (task.properties or {}).get("finalPrompt")
    if not isinstance(value, str) or not value.strip():
        value = None
    if value is None and task.action == "DESCRIBE":
        # novicezk's proxy puts the described prompts in prompt and promptEn as well.
        value = (task.prompt_en or "").strip() or (task.prompt or "").strip() or None
    if value is None:
        return None
    if task.action not in RESULT_ACTIONS and value.strip() in (
        (task.prompt_en or "").strip(),
        (task.prompt or "").strip(),
    ):
        return None  # nothing the page does not show already
    return value


def prompt_rows(task, result):
    """(label, text) of prompt and promptEn, each text shown once: promptEn only when it
    says something the prompt does not, neither when it repeats the result below them
    (a DESCRIBE's prompts are in all three)."""
    prompt, prompt_en = (task.prompt or "").strip(), (task.prompt_en or "").strip()
    repeated = {result.strip()} if result else set()
    rows = []
    if not prompt or prompt not in repeated:
        rows.append((_("Prompt"), task.prompt or ""))
        repeated.add(prompt)
    if prompt_en and prompt_en not in repeated:
        rows.append(("promptEn", task.prompt_en))
    return rows


def buttons(raw):
    items = raw.get("buttons") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:40]:
        if isinstance(item, dict):
            label = " ".join(str(item.get(k) or "") for k in ("emoji", "label")).strip()
            out.append({"label": label or "·", "custom_id": str(item.get("customId") or "")})
    return out


KNOWN_KEYS = {
    "id", "properties", "action", "status", "prompt", "promptEn", "description", "state",
    "submitTime", "startTime", "finishTime", "imageUrl", "progress", "failReason", "buttons",
}  # fmt: skip


def extra_fields(raw):
    """The record's other fields (trueai sends ~80), as (name, text) pairs."""
    if not isinstance(raw, dict):
        return []
    return [(k, v[:500]) for k, v in as_text(raw) if k not in KNOWN_KEYS]


def as_text(mapping):
    for key, value in (mapping or {}).items():
        yield key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def timeline(task):
    events = list(task.events.order_by("seen", "id"))
    previous = task.first_seen
    for event in events:
        event.since_previous = span(previous, event.seen)
        previous = event.seen
    return events


def parent_of(task):
    match = PARENT_IN_DESCRIPTION.match(task.description or "")
    if match and match.group(1) != task.task_id:
        return Task.objects.for_list().filter(source=task.source, task_id=match.group(1)).first()
    reference = (task.properties or {}).get("referencedMessageId")
    if isinstance(reference, str) and reference and task.submitted:
        # No index on properties: bounded to the day before the task, by submit time.
        return (
            Task.objects.for_list()
            .filter(
                source=task.source,
                submitted__gte=task.submitted - PARENT_WINDOW,
                submitted__lte=task.submitted,
                properties__messageId=reference,
            )
            .exclude(pk=task.pk)
            .first()
        )
    return None


def children_of(task):
    # Tasks whose command names this one ("/up <id> U1"), found through the search index.
    return list(
        Task.objects.for_list()
        .filter(source=task.source)
        .filter(search.text_filter(task.task_id, match_id=False))
        .filter(description__contains=task.task_id)
        .exclude(pk=task.pk)
        .order_by("submitted", "id")[:24]
    )
