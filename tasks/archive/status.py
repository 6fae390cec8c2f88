"""The archive's counts as the overview shows them (archived, failed, lost), kept by the
passes in the one-row ArchiveStatus table."""

from datetime import timedelta

from django.db.models import Count, F

from tasks.models import ArchiveStatus, ImageState, Task


def status_counts():
    """{"archived": n, "pending": n, "failed": n, "lost": n, "none": n}, in one query."""
    counts = dict.fromkeys(ImageState.values, 0)
    rows = Task.objects.order_by().values_list("image_state").annotate(n=Count("pk"))
    for state, n in rows:
        counts[state] = counts.get(state, 0) + n
    return counts


# status_counts() reads the whole table (1.7 s on SQLite with a million tasks): too slow
# for a page. So the passes keep the counts of the states they move tasks into, in the
# one-row ArchiveStatus table, and the overview reads them (and counts `pending` itself,
# by task_image_pending_idx). A pass recounts every RECOUNT, which also catches what only
# the sync and deletions change (a re-signed link takes an archived task back to
# pending); between recounts it adds what it moved itself.
RECOUNT = timedelta(minutes=5)


def load_status():
    """{"archived", "failed", "lost": n, "counted", "updated": datetime} as the passes
    keep them, or None before the first pass."""
    return (
        ArchiveStatus.objects.filter(pk=1)
        .values("archived", "failed", "lost", "counted", "updated")
        .first()
    )


def update_status(now, counts):
    """After a pass: recount if the counts are missing or old, else add this pass's moves."""
    status = load_status()
    if status is None or not timedelta(0) <= now - status["counted"] < RECOUNT:
        totals = status_counts()
        ArchiveStatus.objects.update_or_create(
            pk=1,
            defaults={
                "archived": totals.get("archived", 0),
                "failed": totals.get("failed", 0),
                "lost": totals.get("lost", 0),
                "counted": now,
                "updated": now,
            },
        )
    elif counts.archived or counts.kept or counts.failed or counts.lost:
        # Every move of a pass starts from pending, which the overview counts itself.
        # Added in the database: two passes at once must not lose each other's moves.
        ArchiveStatus.objects.filter(pk=1).update(
            archived=F("archived") + counts.archived + counts.kept,
            failed=F("failed") + counts.failed,
            lost=F("lost") + counts.lost,
            updated=now,
        )
