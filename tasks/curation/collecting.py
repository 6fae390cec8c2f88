"""Collections: which a user sees, and adding, ordering and covering their tasks."""

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from tasks.models import Collection, CollectionItem

MAX_NAME = 200


def visible_to(user):
    """The team's collections and the user's own."""
    return Collection.objects.filter(Q(owner__isnull=True) | Q(owner=user))


def add_tasks(collection, pks):
    """Append these tasks (in this order) to the collection; those already in it stay
    where they are. Returns how many were added."""
    with transaction.atomic():
        # Locks the collection's row: two additions at once cannot take one position.
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        present = set(
            CollectionItem.objects.filter(collection=locked, task_id__in=pks).values_list(
                "task_id", flat=True
            )
        )
        last = locked.items.aggregate(last=Max("position"))["last"]
        position = -1 if last is None else last
        new = []
        for pk in dict.fromkeys(pks):
            if pk not in present:
                position += 1
                new.append(CollectionItem(collection=locked, task_id=pk, position=position))
        CollectionItem.objects.bulk_create(new)
        if locked.cover_id is None and new:
            locked.cover_id = new[0].task_id
        locked.updated = timezone.now()
        locked.save(update_fields=["cover", "updated"])
    return len(new)


def remove_task(collection, pk):
    with transaction.atomic():
        CollectionItem.objects.filter(collection=collection, task_id=pk).delete()
        if collection.cover_id == pk:
            first = collection.items.order_by("position").values_list("task_id", flat=True)
            collection.cover_id = first.first()
        collection.updated = timezone.now()
        collection.save(update_fields=["cover", "updated"])


def reorder(collection, pks):
    """Put the collection's tasks in the order of `pks`; tasks not named keep their
    order after those named."""
    items = list(collection.items.order_by("position"))
    rank = {pk: n for n, pk in enumerate(dict.fromkeys(pks))}
    items.sort(key=lambda item: (rank.get(item.task_id, len(rank)), item.position))
    for position, item in enumerate(items):
        item.position = position
    with transaction.atomic():
        CollectionItem.objects.bulk_update(items, ["position"])
        collection.updated = timezone.now()
        collection.save(update_fields=["updated"])


def move(collection, pk, step):
    """Move one task `step` places up (negative) or down."""
    order = list(collection.items.order_by("position").values_list("task_id", flat=True))
    if pk not in order:
        return
    at = order.index(pk)
    to = max(0, min(len(order) - 1, at + step))
    order.insert(to, order.pop(at))
    reorder(collection, order)


def set_cover(collection, pk):
    if collection.items.filter(task_id=pk).exists():
        collection.cover_id = pk
        collection.updated = timezone.now()
        collection.save(update_fields=["cover", "updated"])
        return True
    return False
