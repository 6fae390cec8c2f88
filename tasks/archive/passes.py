"""The image archive: copy each task's image while its link lives, with a small thumbnail.

Discord links die a day after the task finishes (a link's `ex`, its expiry, is its `is` plus
86,400 s: README.md, "The image archive"); the sync marks a task `pending` whenever its image
URL changes, with `image_expires` read from the link. One pass:
1. pending links already past their expiry become `lost` (one UPDATE);
2. due tasks are claimed a batch at a time with a conditional UPDATE (so passes running
   side by side never copy the same task), finished tasks first, soonest-to-expire first,
   then newest first;
3. worker threads download (tasks/archive/fetch.py), check the bytes with Pillow, make the
   thumbnail and write both to storage; the ORM stays in the pass's own thread;
4. each result is recorded only if the task still wants that URL: a sync that moved on to
   a new image in the meantime wins;
5. with MJ_THUMBS_ONLY_AFTER_DAYS set, originals of old tasks are deleted in batches.

Discord re-signs a link (same file, new ex/hm), and the sync marks the task pending again;
if that link dies or fails before it is copied, the task goes back to `archived` with its
earlier copy of the same picture (and the reason in image_error), never to `lost` or
`failed`. A copy of another picture (the grid preview before a final image) is not kept
in its place.

File names are content-addressed (`images/ab/cdef….png`, `thumbs/ab/cdef….webp`, from the
SHA-256 of the original), so an image shared by tasks is stored once and a name never
changes meaning. The in-progress `_grid_0` preview of an unfinished task is stored under the
task's own folder instead (`previews/<pk>/…`): it is replaced within a minute or two, and
its files can then be deleted without asking whether another task uses them.
"""

import hashlib
import io
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import Case, F, Q, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from tasks.archive.fetch import (
    Fetcher,
    FetchError,
    Policy,
    host_and_port,
    media_type,
    recorded_for,
    resolve_origin,
    short,
)
from tasks.archive.files import FORMATS, THUMB_SIZE, delete_file, is_preview_of
from tasks.archive.status import update_status
from tasks.db.counts import Counts
from tasks.links import same_picture
from tasks.models import FINISHED_STATUSES, ImageState, Source, Task

log = logging.getLogger(__name__)

THUMB_QUALITY = 80
BACKOFF_MINUTES = (1, 5, 30)  # after the 1st, 2nd and 3rd failed attempt; the 4th gives up
CLAIM_MINUTES = 10  # a claimed task waits this long before another pass may take it
LOST = "the link expired before it could be copied"
KEPT = "kept the copy of an earlier link"


@dataclass
class ArchiveCounts(Counts):
    """What a pass did, in the order archive_images prints them."""

    archived: int = 0
    failed: int = 0  # given up: image_state "failed"
    retrying: int = 0  # failed this time, tried again later
    lost: int = 0
    skipped: int = 0  # taken by another pass, or its image changed while we copied it
    kept: int = 0  # a new link died or failed; back to "archived" with an earlier copy
    pruned: int = 0  # originals deleted by the retention setting


@dataclass
class Job:
    """What a worker thread needs to copy one task's image; no model instances."""

    pk: int
    url: str
    finished: bool
    expires: object
    attempts: int
    old_image: str
    old_thumb: str
    old_url: str  # the link the old files were copied from (Task.archived_url)
    policy: Policy

    def keeps_old_copy(self):
        """Whether the old files are this image: a re-signed link of the same picture (not
        the grid preview of a final image that has yet to be copied)."""
        return bool(self.old_image or self.old_thumb) and same_picture(self.old_url, self.url)


@dataclass
class Copied:
    image_file: str
    thumb_file: str
    size: int
    mime: str
    width: int
    height: int
    sha256: str


# The pass


def archive_pass(now=None, max_seconds=None, batch=None, workers=None):
    """One archive pass (the schedule's function and `manage.py archive_images`).

    `now` fixes the time the pass believes it is (tests move a simulator's clock)."""
    clock = (lambda: now) if now is not None else timezone.now
    budget = settings.MJ_ARCHIVE_PASS_SECONDS if max_seconds is None else max_seconds
    batch = batch or settings.MJ_ARCHIVE_BATCH
    workers = max(1, workers or settings.MJ_ARCHIVE_WORKERS)
    started = time.monotonic()
    counts = ArchiveCounts()
    mark_lost(clock(), counts)
    policies = {}
    fetcher = Fetcher(
        max_bytes=settings.MJ_ARCHIVE_MAX_MB * 1024 * 1024,
        timeout=settings.MJ_ARCHIVE_TIMEOUT,
        deadline=settings.MJ_ARCHIVE_DEADLINE,
        pool_size=workers,
    )
    with fetcher, ThreadPoolExecutor(workers, thread_name_prefix="mj-archive") as pool:
        while time.monotonic() - started < budget:
            jobs = claim(clock(), batch, policies, counts)
            if jobs is None:
                break
            futures = {pool.submit(copy_image, fetcher, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    copied = future.result()
                except FetchError as exc:
                    record_failure(job, exc, clock(), counts)
                except Exception as exc:
                    log.exception("archiving %s crashed", job.url)
                    error = FetchError(f"internal error: {exc.__class__.__name__}: {short(exc)}")
                    record_failure(job, error, clock(), counts)
                else:
                    record_success(job, copied, counts)
    counts.pruned = prune_originals(clock(), batch, started, budget)
    update_status(clock(), counts)
    if counts:
        log.info("archive pass: %s in %.1f s", counts, time.monotonic() - started)
    return counts


def due(now):
    """Pending tasks whose next try has come, in the order they should be copied."""
    return (
        Task.objects.pending_images()
        .filter(Q(image_next_try__isnull=True) | Q(image_next_try__lte=now))
        .annotate(running=Case(When(status__in=FINISHED_STATUSES, then=Value(0)), default=Value(1)))
        .order_by(
            "running",
            F("image_expires").asc(nulls_last=True),
            F("submitted").desc(nulls_last=True),
            "-id",
        )
    )


# Tasks with a stored original or thumbnail (image_urls.has_copy, as a filter).
HOLDS_FILES = ~Q(image_file="") | ~Q(thumb_file="")


def mark_lost(now, counts):
    # Served by task_image_pending_idx. Claimed tasks (next try in the future) are left to
    # the pass copying them. A task with a copy of an earlier link of the same picture
    # (re-signed) keeps showing it.
    expired = (
        Task.objects.pending_images()
        .filter(image_expires__lte=now)
        .filter(Q(image_next_try__isnull=True) | Q(image_next_try__lte=now))
    )
    copies = expired.filter(HOLDS_FILES).values_list("pk", "image_url", "archived_url")
    resigned = [pk for pk, url, old_url in copies if same_picture(old_url, url)]
    counts.kept += expired.filter(pk__in=resigned).update(
        image_state=ImageState.ARCHIVED,
        image_next_try=None,
        image_error=with_last_attempt(f"{KEPT}: the new link {LOST}"),
    )
    counts.lost += expired.update(
        image_state=ImageState.LOST,
        image_next_try=None,
        image_error=with_last_attempt(LOST),
    )


def with_last_attempt(message):
    """The message, followed by the reason of the last failed attempt if there was one."""
    return Case(
        When(image_error="", then=Value(message)),
        default=Concat(
            Value(message + "; the last attempt: "), F("image_error"), output_field=TextField()
        ),
        output_field=TextField(),
    )


def claim(now, batch, policies, counts):
    """Claim up to `batch` due tasks; None when there is nothing left to do."""
    rows = list(
        due(now).values_list(
            "pk",
            "image_url",
            "status",
            "image_expires",
            "image_attempts",
            "image_file",
            "thumb_file",
            "archived_url",
            "source_id",
        )[:batch]
    )
    if not rows:
        return None
    missing = {row[-1] for row in rows} - set(policies)  # source ids without a policy yet
    for source in Source.objects.filter(pk__in=missing):
        policies[source.pk] = policy_for(source)
    until = now + timedelta(minutes=CLAIM_MINUTES)
    jobs = []
    for pk, url, status, expires, attempts, old_image, old_thumb, old_url, source_id in rows:
        # The healthchecks way: a conditional UPDATE, and only the pass that changed
        # the row goes on. The URL is part of the condition: a sync may just have moved it.
        claimed = (
            Task.objects.filter(pk=pk, image_state=ImageState.PENDING, image_url=url)
            .filter(Q(image_next_try__isnull=True) | Q(image_next_try__lte=now))
            .update(image_next_try=until)
        )
        if claimed != 1:
            counts.skipped += 1
            continue
        finished = status in FINISHED_STATUSES
        policy = policies[source_id]
        jobs.append(
            Job(pk, url, finished, expires, attempts, old_image, old_thumb, old_url, policy)
        )
    return jobs


def policy_for(source):
    """Where a source's images may come from (tasks/archive/fetch.py). Its own host is
    trusted on its own port, at the addresses the sync noted after its last pass that
    worked; a source that has none yet for its URL (saved, and not synced since) gets
    them noted now, once: a later DNS answer is not trusted until a sync finds it."""
    resolved = source.resolved_addresses
    if not recorded_for(resolved, *host_and_port(source.base_url)):
        resolved = resolve_origin(source.base_url)
        if resolved is not None:
            Source.objects.filter(pk=source.pk).update(resolved_addresses=resolved)
    return Policy.for_source(
        source.base_url,
        source.allow_private_images,
        settings.MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS,
        resolved,
    )


def still_wanted(job):
    return Task.objects.filter(pk=job.pk, image_state=ImageState.PENDING, image_url=job.url)


def record_success(job, copied, counts):
    updated = still_wanted(job).update(
        image_state=ImageState.ARCHIVED,
        image_file=copied.image_file,
        thumb_file=copied.thumb_file,
        archived_url=job.url,
        image_bytes=copied.size,
        image_type=copied.mime,
        image_width=copied.width,
        image_height=copied.height,
        image_sha256=copied.sha256,
        image_next_try=None,
        image_error="",
    )
    if updated != 1:
        counts.skipped += 1
        for name in (copied.image_file, copied.thumb_file):
            if is_preview_of(name, job.pk):
                delete_file(name)
        return
    counts.archived += 1
    # The files of the image this one replaces (a preview, usually), unless still in use.
    for old, new in ((job.old_image, copied.image_file), (job.old_thumb, copied.thumb_file)):
        if old and old != new:
            discard(old, job.pk)


def record_failure(job, error, now, counts):
    attempts = job.attempts + 1
    wanted = still_wanted(job)
    gone = error.gone and job.expires is not None and job.expires <= now
    if (gone or error.permanent or attempts > len(BACKOFF_MINUTES)) and job.keeps_old_copy():
        # The files of an earlier link are still there (discard() only runs on success).
        what = f"the new link {LOST}" if gone else "the new link failed"
        updated = wanted.update(
            image_state=ImageState.ARCHIVED,
            image_attempts=attempts,
            image_next_try=None,
            image_error=f"{KEPT}: {what}: {error.reason}",
        )
        counts.kept += updated
    elif gone:
        updated = wanted.update(
            image_state=ImageState.LOST,
            image_attempts=attempts,
            image_next_try=None,
            image_error=f"{LOST}: {error.reason}",
        )
        counts.lost += updated
    elif error.permanent or attempts > len(BACKOFF_MINUTES):
        updated = wanted.update(
            image_state=ImageState.FAILED,
            image_attempts=attempts,
            image_next_try=None,
            image_error=error.reason,
        )
        counts.failed += updated
    else:
        updated = wanted.update(
            image_attempts=attempts,
            image_next_try=now + timedelta(minutes=BACKOFF_MINUTES[attempts - 1]),
            image_error=error.reason,
        )
        counts.retrying += updated
    if updated != 1:
        counts.skipped += 1
    log.info("archiving %s failed (attempt %d): %s", job.url, attempts, error.reason)


# Copying one image (in a worker thread: no ORM here)


def copy_image(fetcher, job):
    fetched = fetcher.fetch(job.url, job.policy)
    data = fetched.data
    fmt, width, height, thumb = inspect_image(data, fetched.content_type)
    ext, mime = FORMATS[fmt]
    sha = hashlib.sha256(data).hexdigest()
    if job.finished:
        image_name = f"images/{sha[:2]}/{sha[2:]}.{ext}"
        thumb_name = f"thumbs/{sha[:2]}/{sha[2:]}.webp"
    else:
        image_name = f"previews/{job.pk}/{sha[:16]}.{ext}"
        thumb_name = f"previews/{job.pk}/{sha[:16]}-thumb.webp"
    put_file(image_name, data)
    put_file(thumb_name, thumb)
    return Copied(image_name, thumb_name, len(data), mime, width, height, sha)


def inspect_image(data, claimed_type=""):
    """(format, width, height, WebP thumbnail bytes) of an image, or FetchError.

    The bytes must decode, whatever the server said they were."""
    max_pixels = settings.MJ_ARCHIVE_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
            fmt, (width, height) = img.format, img.size
            if width * height > max_pixels:
                raise FetchError(
                    f"refused: {width}x{height} pixels is more than the limit of "
                    f"{max_pixels:,} (a decompression bomb?)",
                    permanent=True,
                )
            img.verify()
        # verify() leaves the image unusable: open it again to decode it.
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as img:
            thumb = make_thumbnail(img)
    except FetchError:
        raise
    except Image.DecompressionBombError as exc:
        raise FetchError(f"refused: {exc}", permanent=True) from exc
    except UnidentifiedImageError as exc:
        # Not a byte of the answer: image_error is shown to viewers, and an answer that is
        # no image may come from a service that was never meant to be read.
        what = media_type(claimed_type)
        raise FetchError(f"not an image ({what}, {len(data):,} bytes)") from exc
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        raise FetchError(f"broken image: {short(exc)}") from exc
    return fmt, width, height, thumb


def make_thumbnail(img):
    # JPEG can decode at a fraction of its size; other formats ignore draft().
    img.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))
    img.load()  # a truncated file fails here
    ImageOps.exif_transpose(img, in_place=True)
    img.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    if img.mode not in ("RGB", "RGBA"):
        alpha = img.mode in ("LA", "PA", "La") or "transparency" in img.info
        img = img.convert("RGBA" if alpha else "RGB")
    out = io.BytesIO()
    # method 2: half the time of the default 4, for files 5% larger
    img.save(out, "WEBP", quality=THUMB_QUALITY, method=2)
    return out.getvalue()


def put_file(name, data):
    """Store `data` under its content-addressed `name`, unless a whole copy is there already.

    Two workers (or two passes) may store the same image at the same moment. On the file
    system the bytes go to a temporary file that is then renamed over `name` (atomic), so
    `name` never shows a half-written file: a writer that finds one knows it is left over
    from a crash. Deleting "short" files instead deleted the file another worker had just
    created and was still writing, whose save then failed (FileNotFoundError)."""
    storage = default_storage
    if holds_whole(storage, name, len(data)):
        return
    if isinstance(storage, FileSystemStorage):
        part = storage.save(f"{name}.{uuid.uuid4().hex}.part", ContentFile(data))
        try:
            os.replace(storage.path(part), storage.path(name))
        except BaseException:
            delete_file(part)
            raise
        return
    # Other backends (object stores): an object appears whole or not at all.
    if storage.exists(name):
        storage.delete(name)  # a broken copy
    saved = storage.save(name, ContentFile(data))
    if saved != name:
        # Another worker wrote the same image at the same moment; keep one copy.
        storage.delete(saved)


def holds_whole(storage, name, size):
    """Whether `name` is stored with `size` bytes (same name, same bytes)."""
    try:
        return storage.exists(name) and storage.size(name) == size
    except OSError:  # deleted in between
        return False


# Old files


def discard(name, pk):
    """Delete a file this task no longer uses, unless another task still does."""
    if not is_preview_of(name, pk):
        # A content-addressed file may be shared. No index serves this lookup: it runs
        # only when a finished task's image is replaced by a different one, which is rare.
        if Task.objects.filter(Q(image_file=name) | Q(thumb_file=name)).exists():
            return
    delete_file(name)


def prune_originals(now, batch, started, budget):
    """MJ_THUMBS_ONLY_AFTER_DAYS: delete the originals of tasks submitted before the cutoff."""
    days = settings.MJ_THUMBS_ONLY_AFTER_DAYS
    if not days or days <= 0:
        return 0
    cutoff = now - timedelta(days=days)
    pruned = 0
    while True:
        # Newest first along task_submitted_idx: after the first catch-up, what is left to
        # prune sits just below the cutoff.
        rows = list(
            Task.objects.filter(submitted__lt=cutoff, image_state=ImageState.ARCHIVED)
            .exclude(image_file="")
            .exclude(thumb_file="")
            .order_by("-submitted", "-id")
            .values_list("pk", "image_file")[:batch]
        )
        if not rows:
            break
        names = {name for _, name in rows}
        pks = [pk for pk, _ in rows]
        pruned += Task.objects.filter(pk__in=pks, image_file__in=names).update(image_file="")
        in_use = set(Task.objects.filter(image_file__in=names).values_list("image_file", flat=True))
        for name in names - in_use:
            delete_file(name)
        if len(rows) < batch or time.monotonic() - started > budget:
            break
    return pruned
