"""Deleting tasks from the mirror, with what hangs on them: events, media copies, files,
roll-up hours, usage days and the accounts' hours.

The mirror never deletes on its own; purge_tasks and the admin's delete actions do,
and both go through here so that neither leaves image files or overview counts behind.
A task's curation (favourites, tags, collection entries, share links) goes with it by
CASCADE, and a collection whose cover it was loses the cover (SET_NULL).
"""

from django.db import transaction
from django.db.models import Q

from tasks.accounts import rollup as account_hours
from tasks.archive.files import delete_file, is_preview_of
from tasks.models import Task, TaskEvent, TaskMedia
from tasks.reports import rollup
from tasks.usage import rollup as usage

COLUMNS = ("pk", "image_file", "thumb_file", "submitted")


def delete_tasks(rows):
    """Delete the tasks of `rows` (a list of values of COLUMNS) and their events and media
    copies, in one transaction; return (tasks, events). Their files are the caller's to
    delete, with delete_unused_files once this has committed: `rows` gains a row
    (pk, file, thumb_file, None) for each media copy, so that it deletes those too."""
    pks = [pk for pk, *_ in rows]
    media = TaskMedia.objects.filter(task_id__in=pks).values_list("task_id", "file", "thumb_file")
    rows.extend((pk, file, thumb, None) for pk, file, thumb in media)
    with transaction.atomic():
        # Deletes leave no last_changed behind: the roll-up is told which hours.
        rollup.invalidate({submitted for *_, submitted in rows if submitted})
        events = TaskEvent.objects.filter(task_id__in=pks).delete()[0]
        tasks = Task.objects.filter(pk__in=pks).delete()[1].get("tasks.Task", 0)
        usage.forget({submitted for *_, submitted in rows if submitted})
        account_hours.forget({submitted for *_, submitted in rows if submitted})
    return tasks, events


def delete_unused_files(rows):
    """Delete the files of deleted tasks (rows of COLUMNS) that no remaining task uses
    (content-addressed files may be shared); return how many."""
    names = {
        name: pk
        for pk, image_file, thumb_file, _ in rows
        for name in (image_file, thumb_file)
        if name
    }
    if not names:
        return 0
    shared = [n for n, pk in names.items() if not is_preview_of(n, pk)]
    in_use = set()
    if shared:
        used = Task.objects.filter(Q(image_file__in=shared) | Q(thumb_file__in=shared))
        for image_file, thumb_file in used.values_list("image_file", "thumb_file"):
            in_use.update((image_file, thumb_file))
        copies = TaskMedia.objects.filter(Q(file__in=shared) | Q(thumb_file__in=shared))
        for file, thumb_file in copies.values_list("file", "thumb_file"):
            in_use.update((file, thumb_file))
    gone = [name for name in names if name not in in_use]
    for name in gone:
        delete_file(name)
    return len(gone)
