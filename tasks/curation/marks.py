"""Favourites and tags of tasks: reading them for a page's rows, and changing them."""

import re

from tasks.models import Favourite, Tag, TaskTag

TAG_LENGTH = 50
# A tag is one line of text without commas (commas separate tags where people type
# several, and the API's tag= takes comma lists); spaces inside are kept, collapsed.
SPACES = re.compile(r"\s+")
MAX_TAGS_AT_ONCE = 20
SUGGESTIONS = 12


def clean_tag(text):
    """The tag's stored spelling, or "" for text that makes no tag."""
    name = SPACES.sub(" ", str(text).replace(",", " ").replace("\x00", "")).strip()
    return name[:TAG_LENGTH].strip()


def tag_names(values):
    """Tag names from what people typed: several values, each maybe "a, b"."""
    names = []
    for value in values:
        for part in str(value).split(","):
            name = clean_tag(part)
            if name and name not in names:
                names.append(name)
    return names[:MAX_TAGS_AT_ONCE]


def marks_for(user, pks):
    """{pk: {"favourite": bool, "tags": [names]}} of these tasks, for this user: two queries."""
    out = {pk: {"favourite": False, "tags": []} for pk in pks}
    for pk in Favourite.objects.filter(user=user, task_id__in=pks).values_list(
        "task_id", flat=True
    ):
        out[pk]["favourite"] = True
    rows = TaskTag.objects.filter(task_id__in=pks).order_by("tag__name")
    for pk, name in rows.values_list("task_id", "tag__name"):
        out[pk]["tags"].append(name)
    return out


def set_favourite(user, pks, on):
    """Star (on) or unstar these tasks for this user."""
    if not on:
        Favourite.objects.filter(user=user, task_id__in=pks).delete()
        return
    Favourite.objects.bulk_create(
        [Favourite(user=user, task_id=pk) for pk in pks], ignore_conflicts=True
    )


def toggle_favourite(user, task):
    """Flip this user's star on the task; return whether it is starred now."""
    deleted, _ = Favourite.objects.filter(user=user, task=task).delete()
    if deleted:
        return False
    Favourite.objects.bulk_create([Favourite(user=user, task=task)], ignore_conflicts=True)
    return True


def add_tags(user, pks, names):
    """Tag these tasks with these names, creating the tags that are new."""
    if not names or not pks:
        return
    tags = tags_named(names)
    TaskTag.objects.bulk_create(
        [TaskTag(task_id=pk, tag=tag, added_by=user) for pk in pks for tag in tags],
        ignore_conflicts=True,
    )


def remove_tags(pks, names):
    TaskTag.objects.filter(task_id__in=pks, tag__name__in=names).delete()


def tags_named(names):
    Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
    return list(Tag.objects.filter(name__in=names))


def suggest(prefix):
    """Existing tag names starting with `prefix` (any case), in alphabetical order."""
    prefix = clean_tag(prefix)
    tags = Tag.objects.all()
    if prefix:
        tags = tags.filter(name__istartswith=prefix)
    return list(tags.order_by("name").values_list("name", flat=True)[:SUGGESTIONS])
