"""Deleting tasks from the mirror, with what hangs on them: events, files, roll-up hours.

The mirror never deletes on its own; purge_tasks and the admin's delete actions do,
and both go through here so that neither leaves image files or overview counts behind.
"""

from django.db import transaction
from django.db.models import Q

from tasks.archive.files import delete_file, is_preview_of
from tasks.models import Task, TaskEvent
from tasks.reports import rollup

COLUMNS = ("pk", "image_file", "thumb_file", "submitted")


def delete_tasks(rows):
    """Delete the tasks of `rows` (values of COLUMNS) and their events, in one
    transaction; return (tasks, events). Their files are the caller's to delete, with
    delete_unused_files once this has committed."""
    pks = [pk for pk, *_ in rows]
    with transaction.atomic():
        # Deletes leave no last_changed behind: the roll-up is told which hours.
        rollup.invalidate({submitted for *_, submitted in rows if submitted})
        events = TaskEvent.objects.filter(task_id__in=pks).delete()[0]
        tasks = Task.objects.filter(pk__in=pks).delete()[1].get("tasks.Task", 0)
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
    gone = [name for name in names if name not in in_use]
    for name in gone:
        delete_file(name)
    return len(gone)
