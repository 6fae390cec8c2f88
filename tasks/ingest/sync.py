"""One sync pass for one source: ask the proxy, normalise, compare, write what changed.

The single entry point for the schedule, `manage.py sync_tasks`, the notify-hook
and the "refresh from proxy" buttons. Rules it keeps:
- idempotent: a record whose raw text hash matches the stored one is not written;
- never backwards: a record behind the stored state is skipped (records.successor);
- never deletes: a task the proxy forgot is only marked `gone_since`;
- a malformed record is counted, logged and kept raw in InvalidRecord;
- one pass per source at a time, through a lease on the Source row.
"""

import functools
import itertools
import json
import logging
import operator
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks.archive.fetch import resolve_origin
from tasks.db import bulk as bulk_sql
from tasks.db.counts import Counts
from tasks.ingest import derive, records
from tasks.ingest.accounts import sync_accounts
from tasks.ingest.client import ProxyClient, ProxyError
from tasks.ingest.json_items import Item
from tasks.ingest.relay_rows import task_shape
from tasks.ingest.relay_sync import RelayPass, admin_for
from tasks.links import is_web_url, link_expiry
from tasks.models import (
    FINISHED_STATUSES,
    ImageState,
    InvalidRecord,
    Source,
    SourceKind,
    SyncRun,
    Task,
)
from tasks.redaction import redact, secret_values

log = logging.getLogger(__name__)

BATCH = 1000  # records per transaction: short enough not to hold SQLite's writer for long
IDS_PER_REQUEST = 200  # ids per list-by-condition call
TRUEAI_LIST_SIZE = 100  # trueai's /list holds only the newest 100
FULL_PASS_WAITS = 120  # seconds a scheduled full pass waits for the source's lease

TYPED_FIELDS = [
    "action",
    "status",
    "prompt",
    "prompt_en",
    "description",
    "state",
    "progress",
    "progress_pct",
    "image_url",
    "fail_reason",
    "submitted",
    "started",
    "finished",
    "properties",
    "raw",
    "raw_hash",
]
UPSERT_FIELDS = (
    TYPED_FIELDS
    + list(derive.DERIVED_FIELDS)
    + ["last_changed", "last_seen", "in_queue", "gone_since"]
)
# Written only when the image URL changed: the archive must copy the new image.
IMAGE_FIELDS = ["image_state", "image_expires", "image_attempts", "image_next_try", "image_error"]
# Columns the pre-read of a batch needs (store): the hash, and what Stored.seen_again
# asks. Raw and the wide text columns stay in the database, and so does every column
# only the write decides with: a full pass is mostly unchanged records, and on SQLite
# every datetime read is parsed in Python.
STORED_FIELDS = ["task_id", "raw_hash", "status", "in_queue", "gone_since", "last_seen"]
# The write's locked read adds what records.successor and new_row compare and keep.
WRITE_FIELDS = STORED_FIELDS + ["id", "progress", "progress_pct", "image_url", "first_seen"]
WRITE_FIELDS += ["finished", "media"]
# How stale Task.last_seen (the last pass that saw it upstream) may get: an unchanged
# record is rewritten for it at most this often, so a pass an hour after another writes
# nothing at all.
LAST_SEEN_EVERY = timedelta(hours=1)


@dataclass
class Stored:
    """A stored row as STORED_FIELDS or WRITE_FIELDS read it, in their order."""

    task_id: str
    raw_hash: str
    status: str
    in_queue: bool
    gone_since: object
    last_seen: object
    # Read by write() only (WRITE_FIELDS).
    pk: int | None = None
    progress: str = ""
    progress_pct: int | None = None
    image_url: str = ""
    first_seen: object = None
    finished: object = None
    media: list | None = None

    def queue_flag(self, in_queue):
        """in_queue as it should be stored (None: this answer does not say)."""
        return None if in_queue is None else queued(in_queue, self.status)

    def seen_again(self, in_queue, now):
        """Whether seeing it again changes its bookkeeping (back from gone, queue moves,
        last seen more than LAST_SEEN_EVERY ago)."""
        flag = self.queue_flag(in_queue)
        return (
            self.gone_since is not None
            or (flag is not None and self.in_queue != flag)
            or self.last_seen < now - LAST_SEEN_EVERY
        )


@dataclass
class SyncCounts(Counts):
    """What a pass did, in the order SyncRun keeps and prints them."""

    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    invalid: int = 0
    gone: int = 0


class PassSkipped(Exception):
    pass


# Entry points


def sync_source(source, full=False, wait_seconds=0):
    """Run one pass for a source and return its SyncRun (outcome ok, failed or skipped)."""
    kind = SyncRun.Kind.FULL if full else SyncRun.Kind.LIGHT
    owner = uuid.uuid4().hex
    if not claim_lease(source, owner, wait_seconds):
        log.info("%s: skipped, another pass is running", source.name)
        now = timezone.now()
        return SyncRun.objects.create(
            source=source,
            kind=kind,
            outcome=SyncRun.Outcome.SKIPPED,
            error="another pass of this source is still running "
            "(sync_tasks --wait sets how long to wait)",
            started=now,
            ended=now,
            worker=worker_name(),
        )
    try:
        # Started once it holds the lease.
        run = SyncRun.objects.create(source=source, kind=kind, worker=worker_name())

        def work(counts):
            with client_for(source) as client:
                Pass(source, client, run, counts, owner).execute(full)

        run = record_run(run, work)
        if run.outcome == SyncRun.Outcome.OK:
            note_addresses(source)
            if full:
                # Every full pass that worked syncs the Discord accounts too (after one
                # that failed, the proxy is unlikely to answer them); never fails the pass.
                sync_source_accounts(source.pk)
        return run
    finally:
        release_lease(source, owner)


def note_addresses(source):
    """After a pass that worked: what the source's host resolves to, the addresses the
    image archive trusts on its host and port (tasks/archive/fetch.py). Written only when
    they changed."""
    resolved = resolve_origin(source.base_url)
    if resolved is not None and resolved != source.resolved_addresses:
        Source.objects.filter(pk=source.pk).update(resolved_addresses=resolved)
        source.resolved_addresses = resolved


def record_run(run, work):
    """Run work(counts) and record its outcome, counts and error on the SyncRun."""
    counts = SyncCounts()
    try:
        work(counts)
        run.outcome = SyncRun.Outcome.OK
    except ProxyError as exc:
        run.outcome = SyncRun.Outcome.FAILED
        # The message quotes nothing the proxy sent; what it sent is for staff, masked.
        run.error = str(exc)
        run.error_detail = redact(exc.detail, secret_values()) if exc.detail else ""
        log.warning("%s: %s pass failed: %s", run.source.name, run.kind, exc)
    except Exception as exc:
        run.outcome = SyncRun.Outcome.FAILED
        run.error = f"internal error: {exc.__class__.__name__}: {exc}"
        log.exception("%s: %s pass crashed", run.source.name, run.kind)
    finally:
        for name, n in counts.items():
            setattr(run, name, n)
        # An error may quote what the proxy sent: no NUL (PostgreSQL refuses it), bounded.
        run.error = run.error.replace("\x00", "")[:2000]
        run.error_detail = run.error_detail.replace("\x00", "")[:2000]
        run.ended = timezone.now()
        run.save()
    log.info("%s", run.summary())
    return run


def sync_source_by_id(source_id, full=False):
    source = Source.objects.filter(pk=source_id, enabled=True).first()
    if source is not None:
        # Both schedules fire in the same minute every MJ_FULL_SYNC_MINUTES: a full pass
        # waits for that minute's light pass, which is short, rather than be skipped.
        # A light pass skips: the next minute brings another.
        sync_source(source, full=full, wait_seconds=FULL_PASS_WAITS if full else 0)


def enqueue_passes(full=False):
    """The schedules' function: one queued pass per enabled source, so workers share them."""
    from django_q.tasks import async_task

    for source_id in Source.objects.filter(enabled=True).values_list("pk", flat=True):
        async_task(sync_source_by_id, source_id, full, group="mjsite-sync")


def light_pass():
    enqueue_passes(full=False)


def full_pass():
    enqueue_passes(full=True)


def accounts_pass():
    """The accounts' schedule (MJ_ACCOUNT_MINUTES): one queued account sync per source."""
    from django_q.tasks import async_task

    for source_id in Source.objects.filter(enabled=True).values_list("pk", flat=True):
        async_task(sync_source_accounts, source_id, group="mjsite-accounts")


def sync_source_accounts(source_id):
    """One source's Discord accounts (tasks/ingest/accounts.py); never raises."""
    source = Source.objects.filter(pk=source_id, enabled=True).first()
    if source is not None:
        with client_for(source) as client:
            return sync_accounts(source, client)
    return None


def refresh_tasks(source, task_ids):
    """Ask the proxy for these tasks now, one GET /fetch each (the "refresh from proxy"
    buttons). A task the proxy no longer knows is marked gone, and counted so."""
    run = SyncRun.objects.create(source=source, kind=SyncRun.Kind.LIGHT, worker=worker_name())

    def work(counts):
        unknown = []
        try:
            with client_for(source) as client:
                for task_id in task_ids:
                    if source.kind == SourceKind.NEWAPI:
                        # The relay's /fetch answers a user key with its own tasks only.
                        items = admin_for(source, client).by_mj_id(task_id)
                        shape = task_shape
                    else:
                        item, shape = client.fetch(task_id), None
                        items = [] if item is None else [item]
                    if not items:
                        unknown.append(task_id)
                    else:
                        counts.add(ingest(source, items, run=run, shape=shape)[0])
        finally:
            # What was learned before a failure holds: those tasks are gone upstream.
            counts.gone += Task.objects.filter(source=source, task_id__in=unknown).update(
                gone_since=Coalesce("gone_since", Value(timezone.now())), in_queue=False
            )

    return record_run(run, work)


def worker_name():
    # Called per pass: django-q2 forks its workers after this module is imported.
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def client_for(source):
    return ProxyClient(
        source.base_url,
        source.auth_headers(),
        connect_timeout=settings.MJ_CONNECT_TIMEOUT,
        read_timeout=settings.MJ_READ_TIMEOUT,
        retries=settings.MJ_RETRIES,
        max_body_mb=settings.MJ_MAX_BODY_MB,
    )


# The lease


def claim_lease(source, owner, wait_seconds=0):
    deadline = timezone.now() + timedelta(seconds=wait_seconds)
    while True:
        now = timezone.now()
        rows = Source.objects.filter(pk=source.pk)
        until = now + timedelta(seconds=settings.MJ_SYNC_LEASE_SECONDS)
        if rows.filter(lease_until__isnull=True).update(lease_owner=owner, lease_until=until):
            return True
        if rows.filter(lease_until__lt=now).update(lease_owner=owner, lease_until=until):
            close_dead_runs(source, now)  # the lease ran out: its pass died
            return True
        if now >= deadline:
            return False
        time.sleep(1)


def close_dead_runs(source, now):
    """Mark the run of a pass that died holding the lease as failed (it stays 'running').

    No other pass can be running now; a "refresh from proxy" run caught by this
    writes its own outcome when it ends.
    """
    SyncRun.objects.filter(source=source, outcome=SyncRun.Outcome.RUNNING, started__lt=now).update(
        outcome=SyncRun.Outcome.FAILED,
        ended=now,
        error="interrupted: the pass stopped without finishing, and the next one took over",
    )


def renew_lease(source, owner):
    until = timezone.now() + timedelta(seconds=settings.MJ_SYNC_LEASE_SECONDS)
    renewed = Source.objects.filter(pk=source.pk, lease_owner=owner).update(lease_until=until)
    if renewed != 1:
        raise ProxyError("lost the source's sync lease to another pass; stopping this one")


def release_lease(source, owner):
    Source.objects.filter(pk=source.pk, lease_owner=owner).update(lease_owner="", lease_until=None)


# One pass


class Pass:
    def __init__(self, source, client, run, counts, owner):
        self.source, self.client, self.run, self.counts = source, client, run, counts
        self.owner = owner
        self.seen = set()
        self.looks_like_trueai = False
        self.renewed = time.monotonic()

    def execute(self, full):
        if self.source.kind == SourceKind.NEWAPI:
            # Its admin list, by submit time (relay_sync.py); no queue: what is unfinished.
            RelayPass(self).execute(full)
            self.update_queue_flags(None)
            return
        is_relay = self.source.kind == SourceKind.RELAY
        queue_ids = None
        if not is_relay:
            queue_ids = self.read_queue()
        if full and not is_relay:
            self.read_list()
        self.refresh_unfinished()
        self.update_queue_flags(queue_ids)

    def ingest(self, items, in_queue=None, shape=None):
        """Store the items; return the ids the answer held, its invalid records' included
        (the proxy has those tasks: they are neither gone nor out of its queue)."""
        counts, ids = ingest(self.source, items, run=self.run, in_queue=in_queue, shape=shape)
        self.counted(counts, ids)
        shape = shape or (lambda value: value)
        return {records.task_id_if_any(shape(item.value)) for item in items} - {""}

    def counted(self, counts, ids):
        self.counts.add(counts)
        self.seen.update(ids)
        self.renew_lease()

    def renew_lease(self):
        renew_lease(self.source, self.owner)
        self.renewed = time.monotonic()

    def keep_lease(self):
        # While the list downloads and is checked, which can take minutes on a slow proxy.
        if time.monotonic() - self.renewed >= settings.MJ_SYNC_LEASE_SECONDS / 3:
            self.renew_lease()

    def read_queue(self):
        items = self.client.queue()
        if items is None:
            return None  # a proxy without a queue endpoint (trueai): not a failure
        return self.ingest(items, in_queue=True)

    def read_list(self):
        index = ListIndex()
        with self.client.list_tasks(index.note, keep_alive=self.keep_lease) as read:
            for batch in chunked(index.in_submit_order(), BATCH):
                counts, ids = ingest_listed(self.source, batch, read, run=self.run)
                self.counted(counts, ids)
        self.looks_like_trueai = index.looks_like_trueai
        if self.list_is_complete(len(index.entries)):
            self.mark_gone(index.ids)  # an invalid record's id counts: the proxy has it

    def list_is_complete(self, count):
        # trueai's list holds the newest 100 only: a task missing from it is not gone.
        if self.source.kind == SourceKind.TRUEAI or self.looks_like_trueai:
            return False
        if self.source.kind == SourceKind.AUTO and count == TRUEAI_LIST_SIZE:
            return False
        return True

    def refresh_unfinished(self):
        # Every task the mirror holds as unfinished that this pass has not seen yet:
        # this is how tasks that fell out of a short list still get finished.
        stored = Task.objects.filter(source=self.source).unfinished()
        wanted = [t for t in stored.values_list("task_id", flat=True) if t not in self.seen]
        for chunk in chunked(wanted, IDS_PER_REQUEST):
            returned = self.ingest(self.client.list_by_condition(chunk))
            self.mark_gone_ids([t for t in chunk if t not in returned])

    def mark_gone(self, listed):
        present = Task.objects.filter(source=self.source, gone_since__isnull=True)
        missing = [t for t in present.values_list("task_id", flat=True) if t not in listed]
        self.mark_gone_ids(missing)

    def mark_gone_ids(self, task_ids):
        now = timezone.now()
        for chunk in chunked(task_ids, BATCH):
            self.counts.gone += Task.objects.filter(
                source=self.source, task_id__in=chunk, gone_since__isnull=True
            ).update(gone_since=now, in_queue=False)

    def update_queue_flags(self, queue_ids):
        tasks = Task.objects.filter(source=self.source)
        if queue_ids is None:
            # No queue endpoint: the queue is what is unfinished upstream. The ids are read
            # first: an UPDATE takes SQLite's write lock even when it matches no row.
            joining = tasks.filter(in_queue=False).unfinished()
            leaving = tasks.filter(in_queue=True).exclude(pk__in=tasks.unfinished())
            for rows, flag in ((joining, True), (leaving, False)):
                pks = list(rows.values_list("pk", flat=True))
                for chunk in chunked(pks, BATCH):
                    # The condition again: a hook may have finished a task since the read.
                    rows.filter(pk__in=chunk).update(in_queue=flag)
        else:
            stale = tasks.filter(in_queue=True).values_list("task_id", flat=True)
            left = [t for t in stale if t not in queue_ids]
            for chunk in chunked(left, BATCH):
                tasks.filter(task_id__in=chunk).update(in_queue=False)


# The full pass's list, indexed while the client checks it


class Listed(NamedTuple):
    """One item of the list: its task id and raw hash, and where its text is in the spool."""

    task_id: str | None  # None: not a valid record, read back for its reason and text
    raw_hash: str | None
    start: int
    size: int
    submitted: int | float  # submitTime as sent when a number, else 0: for the order only


class ListIndex:
    """What a full pass keeps of each list item, noted while the client checks the body.

    An index of small tuples instead of the parsed values: memory stays bounded,
    and an unchanged record is recognised by its hash without being decoded again.
    """

    def __init__(self):
        self.entries = []
        self.ids = set()  # every id the list holds, invalid records' included
        self.looks_like_trueai = False

    def note(self, item, data, start):
        value = item.value
        if isinstance(value, dict) and "isCompleted" in value:
            self.looks_like_trueai = True
        task_id = records.task_id_if_any(value)
        if task_id:
            self.ids.add(task_id)
        if not task_id or item.problem:
            # Read back later for its reason and text, and counted invalid.
            self.entries.append(Listed(None, None, start, len(data), 0))
            return
        submitted = value.get("submitTime")
        if not isinstance(submitted, int | float) or isinstance(submitted, bool):
            submitted = 0
        # The hash of the bytes is records.raw_hash of the text, as identify makes it.
        raw_hash = records.raw_hash_of_bytes(data)
        self.entries.append(Listed(task_id, raw_hash, start, len(data), submitted))

    def in_submit_order(self):
        """The entries oldest first, whatever the proxy's order (newest first, mostly):
        new tasks are then created in submit order, which the indexes take fastest
        (bulk.create_tasks), batch after batch."""
        return sorted(self.entries, key=operator.attrgetter("submitted"))


class ReadBack:
    """A listed record in the place of a records.Received: its id and hash are known,
    its value and text are read back from the spool on first use."""

    def __init__(self, listed, read):
        self.task_id = listed.task_id
        self.raw_hash = listed.raw_hash
        self.listed = listed
        self.read = read

    @functools.cached_property
    def loaded(self):
        # Listed with an id and without a problem: sound.
        return self.read(self.listed.start, self.listed.size, sound=True)

    @property
    def item(self):
        return self.loaded.value

    @property
    def raw(self):
        return self.loaded.text


# Writing records


def ingest(source, items, run=None, in_queue=None, via="poll", shape=None):
    """Store raw items received from a source; return (SyncCounts, ids of the valid ones).
    shape(value), when given, is the item in the task shape (a relay's row): typed so,
    stored as received."""
    now = timezone.now()
    received, invalid = identify_all(source, items, run, now, shape)
    return store(source, received, invalid, len(items), now, run, in_queue, via)


def ingest_listed(source, entries, read, run=None):
    """ingest for a batch of a full pass's list, by its ListIndex entries.

    Only the items whose hash differs from the stored one, and the invalid ones,
    are read back from the spooled body and decoded.
    """
    now = timezone.now()
    unusable = [read(e.start, e.size) for e in entries if e.task_id is None]
    received, invalid = identify_all(source, unusable, run, now)
    for entry in entries:
        if entry.task_id is not None:
            received.setdefault(entry.task_id, []).append(ReadBack(entry, read))
    return store(source, received, invalid, len(entries), now, run, None, "poll")


def identify_all(source, items, run, now, shape=None):
    """Group items by task id as records.Received ({task_id: [versions]}), and the
    invalid ones as InvalidRecord rows."""
    received, invalid = {}, []
    for item in items:
        # Items from the client carry their exact text; plain values are serialised.
        value, text = (item.value, item.text) if isinstance(item, Item) else (item, None)
        task = shape(value) if shape else value  # its text stays the item's own
        try:
            if isinstance(item, Item) and item.problem:
                raise records.InvalidRecord(item.problem, records.task_id_if_any(task))
            got = records.identify(task, text)
        except records.InvalidRecord as exc:
            invalid.append(invalid_row(source, run, now, value, exc, text))
            continue
        received.setdefault(got.task_id, []).append(got)
    return received, invalid


def store(source, received, invalid, fetched, now, run, in_queue, via):
    """Type what changed, write it, and count; return (SyncCounts, ids of the valid ones)."""
    counts = SyncCounts(fetched=fetched)
    # Only records whose text differs from what is stored are typed: an unchanged
    # record costs a hash and a lookup. A single record (a hook callback) skips this
    # read: typing one record is cheaper than the query, and write() reads it anyway.
    before = stored_rows(source, received) if len(received) > 1 else {}
    hashes = {task_id: row.raw_hash for task_id, row in before.items()}
    typed, keep = {}, {}
    for task_id, versions in received.items():
        if len(versions) == 1 and hashes.get(task_id) == versions[0].raw_hash:
            keep[task_id] = versions[0]
            continue
        good = []
        for got in versions:
            try:
                good.append(records.normalise(got.item, got))
            except records.InvalidRecord as exc:
                invalid.append(invalid_row(source, run, now, got.item, exc, got.raw))
        if good:
            # Duplicates of an id in one answer: the one furthest along wins.
            typed[task_id] = best = records.newest(good)[task_id]
            keep[task_id] = next(g for g in versions if g.raw_hash == best.raw_hash)

    counts.invalid = len(invalid)
    if invalid:
        InvalidRecord.objects.bulk_create(invalid)
    if not typed and not any(before[t].seen_again(in_queue, now) for t in keep):
        counts.unchanged += len(keep)  # the common case of a full pass: nothing to write
        return counts, list(keep)
    for attempt in range(3):
        try:
            with transaction.atomic():
                counts.add(write(source, keep, typed, now, in_queue, via))
            break
        except (IntegrityError, OperationalError):
            # Another writer (a hook, a second pass) got between our read and our
            # write; the batch is read and decided again.
            if attempt == 2:
                raise
    return counts, list(keep)


def invalid_row(source, run, now, item, exc, text=None):
    log.warning("%s: invalid record %s: %s", source.name, exc.task_id or "", exc.reason)
    return InvalidRecord(
        source=source,
        sync_run=run,
        received=now,
        task_id=exc.task_id,
        reason=exc.reason,
        raw=records.raw_text_for_invalid(item, text=text),
    )


def stored_rows(source, task_ids, lock=False):
    """The stored rows of these tasks; locked, and with WRITE_FIELDS, for write()."""
    columns = WRITE_FIELDS if lock else STORED_FIELDS
    if connection.vendor == "postgresql":
        rows = bulk_sql.stored_tasks(source.pk, task_ids, columns, lock=lock)
        return {row[0]: Stored(*row) for row in rows}
    # The ids as one JSON parameter: a thousand parameters cost Django more to compile
    # than SQLite takes to answer.
    listed = RawSQL("SELECT value FROM json_each(%s)", [json.dumps(list(task_ids))])  # noqa: S611
    rows = Task.objects.filter(source=source, task_id__in=listed)
    if lock:
        rows = rows.select_for_update().order_by("task_id")  # one lock order: no deadlocks
    return {row[0]: Stored(*row) for row in rows.values_list(*columns)}


def write(source, received, typed, now, in_queue, via):
    """Decide and write one batch, inside a transaction that locks its stored rows."""
    counts = SyncCounts()
    stored = stored_rows(source, received, lock=True)
    upserts, events = [], []
    touch = {}  # pk: the queue flag to store (None: leave it) for rows only seen again
    for task_id, got in received.items():
        task = stored.get(task_id)
        record = typed.get(task_id)
        # The stored text, and as far along: nothing to write. (Duplicates in one answer
        # may carry a percentage forward to a record without one that equals the stored
        # record: then it is further along than its text says.)
        if (
            task is not None
            and task.raw_hash == got.raw_hash
            and (
                record is None or record.rank == records.state_rank(task.status, task.progress_pct)
            )
        ):
            counts.unchanged += 1
            if task.seen_again(in_queue, now):
                touch[task.pk] = task.queue_flag(in_queue)
            continue
        # Changed since the hash lookup by another writer: type it now (it was valid then).
        record = record or records.normalise(got.item, got)
        if task is None:
            row = new_row(source, record, now, in_queue, first_seen=now)
            upserts.append(row)
            events.append(event_row(row, now, via))
            counts.created += 1
            continue
        rank = records.state_rank(task.status, task.progress_pct)
        record = records.successor(record, rank, task)
        if record is None:
            counts.stale += 1  # behind what is stored: only the bookkeeping moves
            if task.seen_again(in_queue, now):
                touch[task.pk] = task.queue_flag(in_queue)
            continue
        row = new_row(source, record, now, in_queue, first_seen=task.first_seen)
        if in_queue is None:
            row["in_queue"] = queued(task.in_queue, record.status)
        # A new image link or a changed grid/video list: the archive copies it again.
        row["image_changed"] = (record.image_url, record.derived["media"]) != (
            task.image_url,
            task.media,
        )
        upserts.append(row)
        if (task.status, task.progress, task.image_url) != (
            record.status,
            record.progress,
            record.image_url,
        ):
            events.append(event_row(row, now, via, pk=task.pk))
        counts.updated += 1

    # New rows are inserted, never upserted: a row another writer created since the
    # read above must be decided again (IntegrityError: ingest retries the batch).
    new = [row for row in upserts if "image_changed" not in row]
    pks = bulk_sql.create_tasks(new) if new else {}
    for image_changed, update in ((True, UPSERT_FIELDS + IMAGE_FIELDS), (False, UPSERT_FIELDS)):
        rows = [row for row in upserts if row.get("image_changed") is image_changed]
        if rows:
            bulk_sql.upsert_tasks(rows, update)  # locked rows: the conflict is certain
    for flag in (None, True, False):
        if seen := [pk for pk, to in touch.items() if to is flag]:
            update = {"gone_since": None, "last_seen": now}
            if flag is not None:
                update["in_queue"] = flag
            Task.objects.filter(pk__in=seen).update(**update)
    if events:
        for event in events:
            task_id = event.pop("for_task")
            if event["task_id"] is None:
                event["task_id"] = pks[task_id]  # created in this batch
        bulk_sql.insert_events(events)
    return counts


def new_row(source, record, now, in_queue, first_seen):
    """A task row as a dict of column values: typed fields plus bookkeeping."""
    row = bulk_sql.task_defaults()
    row.update(
        source_id=source.pk,
        task_id=record.task_id,
        first_seen=first_seen,
        last_changed=now,
        last_seen=now,
        gone_since=None,
        in_queue=queued(in_queue, record.status),
        image_state=ImageState.PENDING
        if is_web_url(record.image_url) or record.derived["media"]
        else ImageState.NONE,
        image_expires=link_expiry(record.image_url),
    )
    for name in TYPED_FIELDS:
        row[name] = getattr(record, name)
    row.update(record.derived)
    return row


def queued(in_queue, status):
    """The in_queue flag to store: a finished task is never in the queue, whatever a
    (stale) queue record says."""
    return bool(in_queue) and status not in FINISHED_STATUSES


def event_row(row, now, via, pk=None):
    return {
        "task_id": pk,
        "for_task": row["task_id"],
        "seen": now,
        "status": row["status"],
        "progress": row["progress"],
        "image_url": row["image_url"],
        "via": via,
    }


def chunked(iterable, size):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
