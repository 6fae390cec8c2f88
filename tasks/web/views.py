"""Pages for people: overview, task list, gallery, detail, exports. All need a login."""

import csv
import itertools
import json
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db import connection
from django.db.models import F, Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tasks.archive.display import image_lost, large_url, thumb_size, thumb_url
from tasks.db import search
from tasks.ingest import sync
from tasks.ingest.json_items import too_deep
from tasks.ingest.records import ID_PATTERN
from tasks.models import Source, SyncRun, Task
from tasks.redaction import Masker, secret_values
from tasks.reports import overview as stats
from tasks.templatetags.task_tags import status_class
from tasks.web.filters import (
    RANGES,
    SORT_LABELS,
    SORTS,
    TaskFilterForm,
    duration_expression,
    parse_cursor,
)

PAGE_SIZE = 50
GALLERY_PAGE_SIZE = 60
FACET_SAMPLE = 10_000  # facet counts look at the newest this many matching tasks
FACET_SAMPLE_TEXT = 2_000  # or this many with a text search: each match is an index probe
SORT_WINDOW = 10_000  # sorting by finish time or duration looks at this many
LIVE_MAX = 100  # tasks one live poll may ask for
LIVE_PK = re.compile(r"[0-9]{1,18}")
RECENT = 12  # tasks on the overview
EXPORT_CHUNK = 2000
# "/up 1700000000000001 U1", "/variation <id> V2", "/reroll <id>": the parent's id.
PARENT_IN_DESCRIPTION = re.compile(
    r"^/(?:up|variation|reroll|zoom|pan|action)\s+([0-9A-Za-z_.:-]{1,64})"
)
PARENT_WINDOW = timedelta(days=1)  # referencedMessageId is looked up this far back
EXPORT_FIELDS = [
    "source", "task_id", "action", "status", "progress", "prompt", "prompt_en",
    "description", "fail_reason", "submitted", "started", "finished", "image_url",
]  # fmt: skip


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
    form = TaskFilterForm(request.GET)
    values = form.values
    images_only = page == "gallery"
    qs = form.filter(Task.objects.for_list())
    if images_only:
        qs = with_image(qs)
    # A broken cursor is left out of the values (the page says so): the first page.
    cursor = values["cursor"]
    if not cursor and values["before"]:
        # The previous-page link names the row it must end before; the page is found here,
        # when someone follows it, so that no page pays for a link it may not need.
        cursor = cursor_before(qs, values["sort"], values["before"], size)
    rows, next_cursor = keyset_page(qs, values["sort"], cursor, size)
    first_cursor = make_cursor(rows[0], SORTS[values["sort"]][0]) if cursor and rows else None
    # The sources' names for the filter, and their secrets for the masking: one query.
    sources = list(Source.objects.order_by("name").values_list("name", "secret", "hook_token"))
    decorate(rows, Masker(secret_values(row[1:] for row in sources)))
    statuses, actions, sample_size, capped = facet_counts(form, request, images_only)
    ctx = {
        "page": page,
        "form": form,
        "values": values,
        "tasks": rows,
        "next_cursor": next_cursor,
        "first_cursor": first_cursor,
        "is_first_page": not cursor,
        "statuses": statuses,
        "actions": actions,
        "facets_capped": capped,
        "facet_sample": sample_size,
        "sort_window": SORT_WINDOW if SORTS[values["sort"]][0] != "submitted" else None,
        "sources": [row[0] for row in sources],
        "ranges": [(key, label) for key, (_, label) in RANGES.items()],
        "sorts": list(SORT_LABELS.items()),
        "live_pks": [t.pk for t in rows if not t.is_finished][:LIVE_MAX],
        "export_query": url_without(request)[1:],
        "any_time_url": url_without(request, "range", "submitted_after", "submitted_before"),
    }
    return render(request, template, ctx)


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
    }
    return render(request, "tasks/detail.html", ctx)


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


# Exports: the filtered list, any size, streamed


@login_required
def export_csv(request):
    form = TaskFilterForm(request.GET)
    rows = export_rows(form)
    masker = Masker()

    def lines():
        writer = csv.writer(Echo())
        yield "\ufeff" + writer.writerow(EXPORT_FIELDS)  # BOM: spreadsheets read UTF-8
        for task in rows:
            cells = export_values(task)
            yield writer.writerow([neutralise(masker.plain(value)) for value in cells])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tasks.csv"'
    return response


@login_required
def export_jsonl(request):
    form = TaskFilterForm(request.GET)
    rows = export_rows(form, raw=True)
    masker = Masker()

    def lines():
        for task in rows:
            # The record exactly as the proxy sent it (but for secrets), with its source.
            record = masker.json_text(task.raw)
            yield f'{{"source":{json.dumps(task.source.name)},"task":{record}}}\n'

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tasks.jsonl"'
    return response


class Echo:
    def write(self, value):
        return value


def export_rows(form, raw=False):
    key, desc = SORTS[form.values["sort"]]
    qs = form.filter(Task.objects.select_related("source"))
    if key == "duration":
        qs = qs.annotate(duration=duration_expression())
    fields = ["source__name"] + [f for f in EXPORT_FIELDS if f != "source"]
    qs = qs.only(*fields, *(["raw"] if raw else []))
    order = [order_by(key, desc, nulls_last=True), order_by("id", desc)]
    rows = qs.order_by(*order).iterator(chunk_size=EXPORT_CHUNK)
    # The query runs here, before the response starts: one that fails is an error page,
    # not a file that breaks off after its first line with a success status.
    first = next(rows, None)
    return rows if first is None else itertools.chain([first], rows)


def export_values(task):
    out = [task.source.name]
    for name in EXPORT_FIELDS[1:]:
        value = getattr(task, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        out.append("" if value is None else value)
    return out


def neutralise(value):
    # A cell starting with = + - @ (or a tab or CR) is a formula to a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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


# Keyset pagination: WHERE (key, id) beyond the cursor, never OFFSET, never COUNT(*).


def order_by(key, desc, nulls_last=False):
    expr = F(key)
    if nulls_last:
        return expr.desc(nulls_last=True) if desc else expr.asc(nulls_last=True)
    return expr.desc() if desc else expr.asc()


def keyset_page(qs, sort, cursor, size):
    """One page of `size` rows after `cursor`, and the cursor of the next page (or None).

    Rows whose key is NULL (no submit time, unfinished for the finish and duration sorts)
    come after all others, ordered by id: a second phase of the same keyset, so both
    databases order them alike and each phase is served by an index range.
    """
    qs, key, desc = sortable(qs, sort)
    phase, value, last_id = parse_cursor(cursor, key) or (0, None, None)
    rows = []
    if phase == 0:
        page = qs.filter(**{f"{key}__isnull": False})
        if value is not None:
            page = page.filter(beyond(key, desc, value, last_id))
        rows = list(page.order_by(order_by(key, desc), order_by("id", desc))[: size + 1])
        last_id = None
    if len(rows) <= size:
        tail = qs.filter(**{f"{key}__isnull": True})
        if last_id is not None:
            tail = tail.filter(**{"id__lt" if desc else "id__gt": last_id})
        rows += list(tail.order_by(order_by("id", desc))[: size + 1 - len(rows)])
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    return rows, make_cursor(rows[-1], key)


def cursor_before(qs, sort, before, size):
    """The cursor of the page of `size` rows that ends just before the row of the cursor
    `before`; None when that is the first page. The same keyset walked the other way:
    the `size` rows before it, and one more, whose cursor leads to them."""
    qs, key, desc = sortable(qs, sort)
    parsed = parse_cursor(before, key)
    if parsed is None:
        return None  # a broken cursor, or one of another sort: the first page
    phase, value, pk = parsed
    keyed = qs.filter(**{f"{key}__isnull": False})
    backwards = (order_by(key, not desc), order_by("id", not desc))
    if phase == 1:  # in the NULL-key tail: its rows before that one, then the keyed ones
        tail = qs.filter(**{f"{key}__isnull": True, "id__gt" if desc else "id__lt": pk})
        rows = list(tail.order_by(order_by("id", not desc))[: size + 1])
        if len(rows) <= size:
            rows += list(keyed.order_by(*backwards)[: size + 1 - len(rows)])
    else:
        before_rows = keyed.filter(beyond(key, not desc, value, pk))
        rows = list(before_rows.order_by(*backwards)[: size + 1])
    return make_cursor(rows[size], key) if len(rows) > size else None


def sortable(qs, sort):
    """The queryset a sort pages through, with its key and direction."""
    key, desc = SORTS[sort]
    if key != "submitted":
        # No index serves finish time or duration: they sort the newest SORT_WINDOW
        # matching tasks (by submit time, which the index serves), not the whole table.
        newest = qs.order_by("-submitted", "-id").values("pk")[:SORT_WINDOW]
        qs = qs.filter(pk__in=newest)
    if key == "duration":
        qs = qs.annotate(duration=duration_expression())
    return qs, key, desc


def beyond(key, desc, value, last_id):
    # (key, id) < (value, last_id), written so the key's own range bounds the scan.
    op, strict = ("lte", "lt") if desc else ("gte", "gt")
    return Q(**{f"{key}__{op}": value}) & (
        Q(**{f"{key}__{strict}": value}) | Q(**{f"id__{strict}": last_id})
    )


def make_cursor(task, key):
    value = getattr(task, key)
    if value is None:
        return f"n~~{task.pk}"
    if isinstance(value, timedelta):
        return f"k~{value // timedelta(microseconds=1)}~{task.pk}"
    return f"k~{value.isoformat()}~{task.pk}"


# Facets: one GROUP BY (status, action) over the newest FACET_SAMPLE matching tasks
# (FACET_SAMPLE_TEXT with a text search), filtered by everything but status and action.


def facet_counts(form, request, images_only=False):
    values = form.values
    base = form.filter(Task.objects.all(), facets=False)
    if images_only:  # the gallery's chips count the cards they lead to
        base = with_image(base)
    size = FACET_SAMPLE_TEXT if values["q"] else FACET_SAMPLE
    sample = base.order_by("-submitted", "-id").values_list("status", "action")[:size]
    # Grouped over the sample's own columns: "id IN (sample)" would read every row twice.
    sql, params = sample.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            # The ORM's own SQL, wrapped; its values stay bound parameters.
            "SELECT status, action, COUNT(*) FROM (" + sql + ") sample GROUP BY status, action",  # noqa: S608
            params,
        )
        pairs = cursor.fetchall()
    chosen_status, chosen_action = set(values["status"]), set(values["action"])
    statuses, actions, total = {}, {}, 0
    for status, action, n in pairs:
        total += n
        if not chosen_action or action in chosen_action:
            statuses[status] = statuses.get(status, 0) + n
        if not chosen_status or status in chosen_status:
            actions[action] = actions.get(action, 0) + n
    for chosen, counts in ((chosen_status, statuses), (chosen_action, actions)):
        for value in chosen:
            counts.setdefault(value, 0)
    return (
        chips(request, "status", statuses, chosen_status),
        chips(request, "action", actions, chosen_action),
        size,
        total >= size,
    )


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
