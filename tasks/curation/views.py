"""Curation's pages and actions: stars, tags, selections, collections, share links, ZIPs.

The shared page (/s/<token>/) and its files are the only views here without a login; they
show the shared task's or collection's archived images and videos and the ticked fields,
and nothing else of a task.
"""

import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import (
    FileResponse,
    Http404,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from tasks.curation import collecting, marks, rights, sharing, zips
from tasks.curation.forms import (
    FIELD_LABELS,
    CollectionEditForm,
    CollectionForm,
    SelectionForm,
    ShareForm,
)
from tasks.models import Collection, CollectionItem, ImageState, ShareLink, Task, TaskMedia
from tasks.redaction import Masker
from tasks.web.filters import PksField
from tasks.web.views import decorate, find_task

NO_STORE = "private, no-store"


def wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


def back(request, fallback):
    """Where a form's POST returns to: its `next` on this site, else `fallback`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


def require(user, perm):
    if not rights.may(user, perm):
        raise PermissionDenied


def pks_of(request, data):
    try:
        return PksField(required=False).clean(data.getlist("pk"))
    except ValidationError as exc:
        raise Http404("not a selection of tasks") from exc


# Stars and tags


@login_required
@require_POST
def favourite(request, task_id):
    task, _others = find_task(request, task_id)
    starred = marks.toggle_favourite(request.user, task)
    if wants_json(request):
        return JsonResponse({"favourite": starred})
    return back(request, task.get_absolute_url())


@login_required
@require_GET
def task_marks(request):
    """The user's stars and the tags of these tasks (?pk=...), and what the user may do:
    curation.js draws them on the list, the gallery, the detail page and the lightbox."""
    prompts = dict(
        Task.objects.filter(pk__in=pks_of(request, request.GET)).values_list("pk", "prompt")
    )
    found = marks.marks_for(request.user, list(prompts))
    masker = Masker()
    for pk, mark in found.items():
        mark["prompt"] = masker.plain(prompts[pk])  # what "c" copies
    response = JsonResponse(
        {
            "marks": {str(pk): mark for pk, mark in found.items()},
            "rights": rights.rights_of(request.user),
        }
    )
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_GET
def tag_suggestions(request):
    return JsonResponse({"tags": marks.suggest(request.GET.get("q", "")[:100])})


@login_required
@require_POST
def selection(request):
    """One action on a selection of tasks (the list's or gallery's ticks, or one task):
    favourite, unfavourite, tag, untag, add to a collection (an existing or a new one)."""
    form = SelectionForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": form.errors.get_json_data()}, status=400)
    data, user = form.cleaned_data, request.user
    found = set(Task.objects.filter(pk__in=data["pk"]).values_list("pk", flat=True))
    pks = [pk for pk in data["pk"] if pk in found]  # in the order given: a collection's order
    action = data["action"]
    result = {"tasks": len(pks)}
    if action in ("favourite", "unfavourite"):
        marks.set_favourite(user, pks, action == "favourite")
    elif action in ("tag", "untag"):
        require(user, rights.TAG)
        names = marks.tag_names([data["tags"]])
        if not names:
            return JsonResponse({"error": _("Give a tag.")}, status=400)
        if action == "tag":
            marks.add_tags(user, pks, names)
        else:
            marks.remove_tags(pks, names)
        result["tags"] = names
    else:
        require(user, rights.COLLECT)
        collection = target_collection(user, data)
        if collection is None:
            return JsonResponse({"error": _("Choose a collection or name a new one.")}, status=400)
        result["added"] = collecting.add_tasks(collection, pks)
        result["collection"] = {"name": collection.name, "url": collection.get_absolute_url()}
    result["marks"] = {str(pk): mark for pk, mark in marks.marks_for(user, pks).items()}
    return JsonResponse(result)


def target_collection(user, data):
    if data["new_collection"]:
        return Collection.objects.create(name=data["new_collection"], owner=user)
    if data["collection"]:
        return collecting.visible_to(user).filter(pk=data["collection"]).first()
    return None


# Collections


@login_required
def collection_list(request):
    if request.method == "POST":
        require(request.user, rights.COLLECT)
        form = CollectionForm(request.POST)
        if form.is_valid():
            owner = None if form.cleaned_data["team"] else request.user
            made = Collection.objects.create(name=form.cleaned_data["name"], owner=owner)
            return redirect(made)
        messages.error(request, _("A collection needs a name."))
        return redirect("curation:collections")
    found = (
        collecting.visible_to(request.user)
        .select_related("cover", "owner")
        .annotate(size=Count("items"))
        .order_by("-updated", "-pk")
    )
    found = list(found)
    decorate([c.cover for c in found if c.cover], Masker())
    if wants_json(request):
        choices = [{"pk": c.pk, "name": c.name, "team": c.owner_id is None} for c in found]
        return JsonResponse({"collections": choices})
    ctx = {"page": "collections", "collections": found, "rights": rights.rights_of(request.user)}
    return render(request, "curation/collections.html", ctx)


@login_required
def collection_detail(request, pk):
    collection = get_object_or_404(
        collecting.visible_to(request.user).select_related("owner"), pk=pk
    )
    if request.method == "POST":
        return edit_collection(request, collection)
    items = collection.items.select_related("task__source").order_by("position")
    tasks = decorate([item.task for item in items], Masker())
    ctx = {
        "page": "collections",
        "collection": collection,
        "tasks": tasks,
        "rights": rights.rights_of(request.user),
        "share_fields": FIELD_LABELS.items(),
        "zip_max_mb": settings.MJ_ZIP_MAX_MB,
    }
    return render(request, "curation/collection.html", ctx)


def edit_collection(request, collection):
    form = CollectionEditForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Not a change of this collection."))
    action, pks = form.cleaned_data["action"], form.cleaned_data["pk"] or []
    if action == "delete":
        require(request.user, rights.DELETE_COLLECTION)
        collection.delete()
        messages.success(request, _("The collection was deleted; its tasks stay."))
        return redirect("curation:collections")
    require(request.user, rights.COLLECT)
    if action == "rename" and form.cleaned_data["name"]:
        collection.name = form.cleaned_data["name"]
        collection.updated = timezone.now()
        collection.save(update_fields=["name", "updated"])
    elif action == "reorder":
        collecting.reorder(collection, pks)
    elif pks and action in ("up", "down"):
        collecting.move(collection, pks[0], -1 if action == "up" else 1)
    elif pks and action == "cover":
        collecting.set_cover(collection, pks[0])
    elif pks and action == "remove":
        collecting.remove_task(collection, pks[0])
    if wants_json(request):
        return JsonResponse({"ok": True})
    return redirect(collection)


# Share links


@login_required
@require_POST
def share_task(request, task_id):
    task, _others = find_task(request, task_id)
    return make_share(request, task=task)


@login_required
@require_POST
def share_collection(request, pk):
    collection = get_object_or_404(collecting.visible_to(request.user), pk=pk)
    return make_share(request, collection=collection)


def make_share(request, **target):
    require(request.user, rights.SHARE)
    form = ShareForm(request.POST)
    if not form.is_valid():
        message = _("Share for 1 to %(max)d days.") % {"max": sharing.MAX_DAYS}
        if wants_json(request):
            return JsonResponse({"error": message}, status=400)
        return HttpResponseBadRequest(message)
    link = sharing.create(request.user, **target, **form.link_options())
    path = sharing.path_of(link)
    if wants_json(request):
        return JsonResponse({"url": path}, status=201)
    messages.success(request, _("Share link made: anyone with it can see what you ticked."))
    return redirect(reverse("curation:shares") + f"#link-{link.pk}")


@login_required
def share_list(request):
    links = ShareLink.objects.select_related("task", "collection", "created_by")
    if not request.user.is_staff:
        links = links.filter(created_by=request.user)
    links = list(links.order_by("-created")[:500])
    now = timezone.now()
    for link in links:
        link.token = sharing.token_of(link)
        path = sharing.path_of(link)
        # MJ_PUBLIC_URL when set: behind a proxy the request's own host may be an inner one.
        link.url = (
            settings.MJ_PUBLIC_URL + path
            if settings.MJ_PUBLIC_URL
            else request.build_absolute_uri(path)
        )
        link.expired = link.expires <= now
        link.may_revoke = sharing.may_revoke(request.user, link)
    return render(request, "curation/shares.html", {"page": "shares", "links": links})


@login_required
@require_POST
def revoke(request, token):
    try:
        key = sharing.SIGNER.unsign(token)
    except sharing.signing.BadSignature as exc:
        raise Http404("no such link") from exc
    link = get_object_or_404(ShareLink, key=key)
    if not sharing.may_revoke(request.user, link):
        raise PermissionDenied
    sharing.revoke(link)
    if wants_json(request):
        return JsonResponse({"revoked": True})
    messages.success(request, _("The link is revoked: it shows nothing any more."))
    return redirect("curation:shares")


def shared(request, token):
    """A shared task or collection, without a login."""
    try:
        link = sharing.find(token)
    except sharing.Gone:
        response = render(request, "curation/shared_expired.html", {"page": "shared"}, status=404)
        response["Cache-Control"] = NO_STORE
        return response
    if link is None:
        raise Http404("no such link")
    sharing.count_view(link)
    tasks = shared_tasks(link)
    copies = media_copies(tasks)
    masker = Masker()
    shown = [shown_task(link, token, task, copies.get(task.pk, []), masker) for task in tasks]
    ctx = {
        "page": "shared",
        "title": link.collection.name if link.collection_id else None,
        "shown": shown,
        "fields": link.fields,
        "expires": link.expires,
    }
    response = render(request, "curation/shared.html", ctx)
    response["Cache-Control"] = NO_STORE
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"  # the token stays out of other sites' logs
    return response


def shared_tasks(link):
    # Only the columns the shared page may show, and the archive's file names.
    columns = ("pk", "task_id", "prompt", "action", "submitted", "finished", "image_file",
               "thumb_file", "image_width", "image_height", "image_state")  # fmt: skip
    if link.task_id:
        return list(Task.objects.filter(pk=link.task_id).only(*columns))
    items = CollectionItem.objects.filter(collection_id=link.collection_id).order_by("position")
    return list(
        Task.objects.filter(collection_items__in=items)
        .only(*columns)
        .order_by("collection_items__position")
    )


def media_copies(tasks):
    """{task pk: [archived TaskMedia]} in their order."""
    out = {}
    copies = TaskMedia.objects.filter(
        task_id__in=[t.pk for t in tasks], state=ImageState.ARCHIVED
    ).exclude(file="")
    for copy in copies.order_by("task_id", "position"):
        out.setdefault(copy.task_id, []).append(copy)
    return out


def shown_task(link, token, task, copies, masker):
    def file_url(which):
        return reverse("curation:shared_file", args=[token, task.pk, which])

    pictures, videos = [], []
    if task.image_file or task.thumb_file:
        pictures.append(
            {
                "src": file_url("image" if task.image_file else "thumb"),
                "width": task.image_width,
                "height": task.image_height,
            }
        )
    for copy in copies:
        item = {"src": file_url(f"m{copy.position}"), "width": copy.width, "height": copy.height}
        if copy.thumb_file:
            item["poster"] = file_url(f"m{copy.position}-thumb")
        (videos if copy.kind == "video" else pictures).append(item)
    fields = set(link.fields)
    return {
        "pictures": pictures,
        "videos": videos,
        "prompt": masker.plain(task.prompt) if "prompt" in fields else None,
        "action": task.action if "action" in fields else None,
        "submitted": task.submitted if "submitted" in fields else None,
        "finished": task.finished if "finished" in fields else None,
    }


@require_GET
def shared_file(request, token, pk, which):
    """An archived file of a shared task: never a proxy's link, never another task's."""
    try:
        link = sharing.find(token)
    except sharing.Gone:
        link = None
    if link is None:
        raise Http404("no such link")
    if link.task_id:
        if link.task_id != pk:
            raise Http404("not shared")
    elif not CollectionItem.objects.filter(collection_id=link.collection_id, task_id=pk).exists():
        raise Http404("not shared")
    name = stored_name(pk, which)
    if not name:
        raise Http404("no such file")
    try:
        handle = default_storage.open(name, "rb")
    except OSError as exc:
        raise Http404("no such file") from exc
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=kind)
    response["Cache-Control"] = NO_STORE  # a revoked link shows nothing, cached or not
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def stored_name(pk, which):
    if which in ("image", "thumb"):
        task = Task.objects.filter(pk=pk).values("image_file", "thumb_file").first() or {}
        return task.get(f"{which}_file") or task.get("thumb_file")
    position, _sep, variant = which[1:].partition("-")
    if not which.startswith("m") or not position.isascii() or not position.isdigit():
        return None
    copy = (
        TaskMedia.objects.filter(task_id=pk, position=int(position[:5]), state=ImageState.ARCHIVED)
        .values("file", "thumb_file")
        .first()
    )
    if copy is None:
        return None
    return copy["thumb_file"] if variant == "thumb" else copy["file"]


# Downloads


@login_required
@require_GET
def zip_download(request):
    """A ZIP of the archived originals of a selection (?pk=...) or of a collection
    (?collection=<pk>), streamed; refused above MJ_ZIP_MAX_MB."""
    collection_pk = request.GET.get("collection", "")
    if collection_pk:
        if not (collection_pk.isascii() and collection_pk.isdigit()):
            raise Http404("no such collection")
        collection = get_object_or_404(
            collecting.visible_to(request.user), pk=int(collection_pk[:18])
        )
        tasks = Task.objects.filter(collection_items__collection=collection).order_by(
            "collection_items__position"
        )
        name = "collection"
    else:
        pks = pks_of(request, request.GET)
        tasks = Task.objects.filter(pk__in=pks).order_by("-submitted", "-pk")
        name = "tasks"
    tasks = list(tasks.only("pk", "task_id", "image_file", "image_bytes"))
    copies = media_copies(tasks)
    total = sum(t.image_bytes or 0 for t in tasks if t.image_file)
    total += sum(c.bytes or 0 for found in copies.values() for c in found)
    if total > settings.MJ_ZIP_MAX_MB * 1024 * 1024:
        message = _(
            "These originals come to %(size)d MB, more than a download may hold "
            "(%(max)d MB): choose fewer."
        ) % {"size": total // (1024 * 1024), "max": settings.MJ_ZIP_MAX_MB}
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    chunks = zips.stream(zips.entries_for(tasks, copies))
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    response["Cache-Control"] = NO_STORE
    return response
