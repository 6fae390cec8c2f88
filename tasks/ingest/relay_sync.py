"""What one pass of a new-api relay source reads: its admin list, by submit time.

A relay has no task list or queue of its own; its admin list (relay_client.py) holds
every task it relayed, newest row first. The first pass of a source, and every full
pass, reads the whole history; a light pass reads the rows submitted since the newest
stored one, less OVERLAP, so a row committed late (the relay took its submit time
before writing it) or on another page is read again rather than missed. Every window
ends at the moment the pass started: the rows the relay adds meanwhile fall outside
it, so its pages do not shift under the pass, and the next pass reads them. A row seen
twice in one pass (pages did shift: the relay's clock is behind ours) is stored once.

Unfinished tasks are refreshed here too: those submitted inside the window come with
it; up to MJ_ID_LOOKUPS older ones are asked for by `mj_id=`, one request each; when
there are more, the window reaches back to the oldest of them instead.

Each row goes to the sync as it was sent (`Task.raw`), typed in the task shape
(relay_rows.task_shape). The pass object is the sync's Pass (it stores, counts and
holds the lease), handed in so this module does not import the sync.
"""

from datetime import timedelta

from django.db.models import Max, Min, Q
from django.utils import timezone

from tasks.ingest import records
from tasks.ingest.relay_client import RelayAdmin
from tasks.ingest.relay_rows import task_shape
from tasks.models import Task

OVERLAP = timedelta(minutes=10)
MJ_ID_LOOKUPS = 100
ROWS_PER_WRITE = 1000  # pages are written ten at a time: a transaction per 1,000 rows


def admin_for(source, client):
    return RelayAdmin(client, source.admin_token, source.admin_user)


def epoch_ms(moment):
    return int(moment.timestamp() * 1000)


def task_ids(items):
    return {records.task_id_if_any(task_shape(item.value)) for item in items} - {""}


class RelayPass:
    def __init__(self, sync_pass):
        self.sync_pass = sync_pass
        self.source = sync_pass.source
        self.admin = admin_for(self.source, sync_pass.client)
        self.kept = {}  # mj_id: the raw hash stored from this pass (a row seen twice)

    def execute(self, full):
        end = epoch_ms(timezone.now())
        tasks = Task.objects.filter(source=self.source)
        newest = tasks.aggregate(newest=Max("submitted"))["newest"]
        start = None if full or newest is None else newest - OVERLAP
        lookups = []
        if start is not None:
            older = tasks.unfinished().filter(Q(submitted__lt=start) | Q(submitted=None))
            lookups = list(older.values_list("task_id", flat=True)[: MJ_ID_LOOKUPS + 1])
            if len(lookups) > MJ_ID_LOOKUPS:
                oldest = older.aggregate(oldest=Min("submitted"))["oldest"]
                start, lookups = (None if oldest is None else min(start, oldest)), []
        listed, pending = set(), []
        for page in self.admin.pages(None if start is None else epoch_ms(start), end):
            pending += page.items
            if len(pending) >= ROWS_PER_WRITE:
                listed |= self.ingest(pending)
                pending = []
            self.sync_pass.keep_lease()
        listed |= self.ingest(pending)
        for mj_id in lookups:
            if mj_id in listed:
                continue
            found = self.ingest(self.admin.by_mj_id(mj_id))
            if mj_id not in found:
                self.sync_pass.mark_gone_ids([mj_id])  # the relay deleted its row
        if start is None:
            # The whole history up to the pass's start: a stored task it lacks was deleted.
            self.sync_pass.mark_gone(listed)

    def ingest(self, items):
        """Store the rows not already stored by this pass; return the ids they hold.
        Of the same row read twice, only the first is counted."""
        fresh = []
        for item in items:
            mj_id = records.task_id_if_any(task_shape(item.value))
            digest = records.raw_hash(item.text)
            if mj_id and self.kept.get(mj_id) == digest:
                continue  # the same row again, on a page that shifted
            if mj_id:
                self.kept[mj_id] = digest
            fresh.append(item)
        if fresh:
            self.sync_pass.ingest(fresh, shape=task_shape)
        return task_ids(items)
