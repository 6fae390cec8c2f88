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

A task's media (Task.media: the four pictures of a trueai grid, its videos) are copied in the
same job as its image_url, each into a TaskMedia row (original or MP4, and a WebP thumbnail
or poster). A task stays `pending` until its image and every media entry are done or given
up: each entry ends `archived`, `failed` (refused, or still failing after the retries) or
`lost` (a signed link that died), and an entry that failed for now keeps the whole task
pending, retried on the task's schedule (1, 5, 30 minutes; the parts already copied are not
fetched again). The task's own image_state then says what became of image_url, as before.
A video (an MP4: bytes that start with an ftyp box and decode with PyAV,
tasks/archive/video.py) gets its own byte limit, MJ_ARCHIVE_MAX_VIDEO_MB, and a poster from
its first frame as its thumbnail; an image_url that is itself an MP4 (trueai's VIDEO) is
archived that way too. Bytes that are neither an image Pillow decodes nor such a video are
refused.

File names are content-addressed (`images/ab/cdef….png`, `thumbs/ab/cdef….webp`,
`videos/ab/cdef….mp4`, from the SHA-256 of the original), so a file shared by tasks is stored
once and a name never changes meaning. The in-progress `_grid_0` preview of an unfinished
task is stored under the task's own folder instead (`previews/<pk>/…`): it is replaced
within a minute or two, and its files can then be deleted without asking whether another
task uses them.
"""

import hashlib
import io
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction
from django.db.models import Case, F, Q, TextField, Value, When
from django.db.models.functions import Concat
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from tasks.archive.fetch import (
    Fetcher,
    FetchError,
    Policy,
    Refused,
    host_and_port,
    media_type,
    recorded_for,
    resolve_origin,
    short,
)
from tasks.archive.files import FORMATS, THUMB_SIZE, VIDEO_FORMATS, delete_file, is_preview_of
from tasks.archive.status import update_status
from tasks.archive.video import inspect_video, looks_like_mp4
from tasks.db.counts import Counts
from tasks.links import link_expiry, same_picture
from tasks.models import FINISHED_STATUSES, ImageState, Source, Task, TaskMedia

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

    def __post_init__(self):
        # Apart, so the tasks' counts above read as they always have.
        self.media = MediaCounts()


@dataclass
class MediaCounts(Counts):
    """The media entries (grid pictures, videos) a pass copied or gave up on."""

    archived: int = 0
    failed: int = 0  # given up, or lost; failing for now keeps its task `retrying`


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
    is_video: bool = False  # Task.is_video: image_url may be an MP4 (the video limit)
    image_needed: bool = True  # False: image_url was copied by an earlier attempt
    items: list = field(default_factory=list)  # MediaItem: the media entries still to copy
    media_count: int = 0  # len(Task.media): TaskMedia rows beyond it are left over

    def keeps_old_copy(self):
        """Whether the old files are this image: a re-signed link of the same picture (not
        the grid preview of a final image that has yet to be copied)."""
        return bool(self.old_image or self.old_thumb) and same_picture(self.old_url, self.url)


@dataclass
class MediaItem:
    """One entry of Task.media to copy, and the files its TaskMedia row holds now."""

    position: int
    kind: str  # "image" or "video", as the record says (the bytes decide what is stored)
    url: str
    old_files: tuple = ()


@dataclass
class Copied:
    image_file: str
    thumb_file: str
    size: int
    mime: str
    width: int
    height: int
    sha256: str
    kind: str = "image"  # or "video"
    duration: float | None = None  # a video's, read from the file


@dataclass
class Result:
    """What one job brought back: the image (None: not needed) and each media entry, as a
    Copied or the FetchError that stopped it."""

    image: object = None
    media: dict = field(default_factory=dict)  # position: Copied or FetchError


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
            futures = {pool.submit(copy_task, fetcher, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # copy_task catches FetchError: this is a bug
                    log.exception("archiving %s crashed", job.url)
                    error = FetchError(f"internal error: {exc.__class__.__name__}: {short(exc)}")
                    result = Result(image=error, media={i.position: error for i in job.items})
                record_result(job, result, clock(), counts)
    counts.pruned = prune_originals(clock(), batch, started, budget)
    update_status(clock(), counts)
    if counts or counts.media:
        elapsed = time.monotonic() - started
        log.info("archive pass: %s, media: %s in %.1f s", counts, counts.media, elapsed)
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
    # A task with media is claimed as usual instead: its grid pictures and videos (on
    # Midjourney's CDN, mostly) may outlive its image link.
    expired = expired.filter(media=[])
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
            "is_video",
            "media",
        )[:batch]
    )
    if not rows:
        return None
    missing = {row[8] for row in rows} - set(policies)  # source ids without a policy yet
    for source in Source.objects.filter(pk__in=missing):
        policies[source.pk] = policy_for(source)
    copies = media_copies([row[0] for row in rows if row[-1]])
    until = now + timedelta(minutes=CLAIM_MINUTES)
    jobs = []
    for row in rows:
        pk, url, status, expires, attempts, old_image, old_thumb, old_url, source_id = row[:9]
        is_video, media = row[9:]
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
        job = Job(pk, url, finished, expires, attempts, old_image, old_thumb, old_url, policy)
        job.is_video = is_video
        # Copied by an earlier attempt of this job, which then waited for its media.
        job.image_needed = not (old_url == url and (old_image or old_thumb))
        job.items = media_to_copy(media, copies.get(pk, {}))
        job.media_count = len(media) if isinstance(media, list) else 0
        jobs.append(job)
    return jobs


def media_copies(pks):
    """{task pk: {position: (url, state, file, thumb_file)}} of the TaskMedia rows of `pks`."""
    found = {}
    rows = TaskMedia.objects.filter(task_id__in=pks).values_list(
        "task_id", "position", "url", "state", "file", "thumb_file"
    )
    for pk, position, *copy in rows:
        found.setdefault(pk, {})[position] = tuple(copy)
    return found


def media_to_copy(media, copies):
    """The entries of Task.media whose TaskMedia row is missing, of another link, or
    failed only for now."""
    items = []
    for position, entry in enumerate(media if isinstance(media, list) else []):
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url:
            continue
        old_url, state, *files = copies.get(position, ("", "", "", ""))
        if state != ImageState.PENDING and same_picture(old_url, url):
            continue  # archived, failed or lost already
        kind = "video" if entry.get("kind") == "video" else "image"
        items.append(MediaItem(position, kind, url, tuple(name for name in files if name)))
    return items


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


def record_result(job, result, now, counts):
    """Write what a job brought back, the task and its media rows in one transaction,
    only if the task still wants this image_url (a sync that moved on wins)."""
    attempts = job.attempts + 1
    media_rows, media_left = media_outcomes(job, result.media, attempts, now)
    if not job.image_needed:
        update = {"image_state": ImageState.ARCHIVED, "image_next_try": None}
        outcome = "archived"
    elif isinstance(result.image, FetchError):
        update, outcome = failure_update(job, result.image, now, attempts)
        log.info("archiving %s failed (attempt %d): %s", job.url, attempts, result.image.reason)
    else:
        update, outcome = success_update(job, result.image)
    if media_left and outcome != "retrying":
        # The image is settled, a media entry is not: the task waits for it, on the
        # task's schedule (what was copied is kept, and not fetched again).
        update.pop("image_state")
        update.update(
            image_attempts=attempts,
            image_next_try=now + timedelta(minutes=BACKOFF_MINUTES[attempts - 1]),
        )
        outcome = "retrying"
    with transaction.atomic():
        updated = still_wanted(job).update(**update)
        if updated == 1:
            write_media(job, media_rows)
    if updated != 1:
        counts.skipped += 1
        for copy in (result.image, *result.media.values()):
            if isinstance(copy, Copied):
                for name in (copy.image_file, copy.thumb_file):
                    if is_preview_of(name, job.pk):
                        delete_file(name)
        return
    setattr(counts, outcome, getattr(counts, outcome) + 1)
    for row in media_rows:
        if row["state"] == ImageState.ARCHIVED:
            counts.media.archived += 1
        elif row["state"] != ImageState.PENDING:
            counts.media.failed += 1
    if isinstance(result.image, Copied):
        # The files of the image this one replaces (a preview, usually), unless still in use.
        new = (result.image.image_file, result.image.thumb_file)
        for old in (job.old_image, job.old_thumb):
            if old and old not in new:
                discard(old, job.pk)


def record_success(job, copied, counts, now=None):
    """Record a copy of the task's image alone (a job without media)."""
    record_result(job, Result(image=copied), now or timezone.now(), counts)


def success_update(job, copied):
    update = {
        "image_state": ImageState.ARCHIVED,
        "image_file": copied.image_file,
        "thumb_file": copied.thumb_file,
        "archived_url": job.url,
        "image_bytes": copied.size,
        "image_type": copied.mime,
        "image_width": copied.width,
        "image_height": copied.height,
        "image_sha256": copied.sha256,
        "image_next_try": None,
        "image_error": "",
    }
    return update, "archived"


def failure_update(job, error, now, attempts):
    """The task's update and outcome (a name of ArchiveCounts) after its image failed."""
    gone = error.gone and job.expires is not None and job.expires <= now
    if (gone or error.permanent or attempts > len(BACKOFF_MINUTES)) and job.keeps_old_copy():
        # The files of an earlier link are still there (discard() only runs on success).
        what = f"the new link {LOST}" if gone else "the new link failed"
        state, message, outcome = ImageState.ARCHIVED, f"{KEPT}: {what}: {error.reason}", "kept"
    elif gone:
        state, message, outcome = ImageState.LOST, f"{LOST}: {error.reason}", "lost"
    elif error.permanent or attempts > len(BACKOFF_MINUTES):
        state, message, outcome = ImageState.FAILED, error.reason, "failed"
    else:
        update = {
            "image_attempts": attempts,
            "image_next_try": now + timedelta(minutes=BACKOFF_MINUTES[attempts - 1]),
            "image_error": error.reason,
        }
        return update, "retrying"
    update = {
        "image_state": state,
        "image_attempts": attempts,
        "image_next_try": None,
        "image_error": message,
    }
    return update, outcome


def media_outcomes(job, results, attempts, now):
    """(the TaskMedia rows to write, whether an entry failed for now and is tried again)."""
    rows, left = [], False
    for item in job.items:
        got = results.get(item.position)
        row = {"position": item.position, "kind": item.kind, "url": item.url}
        if isinstance(got, Copied):
            row.update(
                kind=got.kind,
                state=ImageState.ARCHIVED,
                file=got.image_file,
                thumb_file=got.thumb_file,
                bytes=got.size,
                mime=got.mime,
                width=got.width,
                height=got.height,
                duration=got.duration,
                sha256=got.sha256,
                error="",
                copied=now,
            )
        else:
            error = got if isinstance(got, FetchError) else FetchError("not copied")
            expires = link_expiry(item.url)
            if error.gone and expires is not None and expires <= now:
                row.update(state=ImageState.LOST, error=f"{LOST}: {error.reason}")
            elif error.permanent or attempts > len(BACKOFF_MINUTES):
                row.update(state=ImageState.FAILED, error=error.reason)
            else:
                row.update(state=ImageState.PENDING, error=error.reason)
                left = True
            log.info("archiving %s failed (attempt %d): %s", item.url, attempts, error.reason)
        row["old_files"] = item.old_files
        rows.append(row)
    return rows, left


def write_media(job, rows):
    """Store the media rows (inside record_result's transaction) and drop rows left over
    from a longer media list; files no longer used go after the commit."""
    replaced = []
    for row in rows:
        old_files = row.pop("old_files")
        position = row.pop("position")
        TaskMedia.objects.update_or_create(task_id=job.pk, position=position, defaults=row)
        if row["state"] == ImageState.ARCHIVED:
            new = (row["file"], row["thumb_file"])
            replaced += [name for name in old_files if name not in new]
    left_over = TaskMedia.objects.filter(task_id=job.pk, position__gte=job.media_count)
    for names in left_over.values_list("file", "thumb_file"):
        replaced += [name for name in names if name]
    left_over.delete()
    if replaced:
        transaction.on_commit(lambda: [discard(name, job.pk) for name in set(replaced)])


# Copying one task's files (in a worker thread: no ORM here)


def copy_task(fetcher, job):
    """Copy the task's image (unless an earlier attempt did) and each media entry still to
    copy; one failing does not stop the others."""
    result = Result()
    if job.image_needed:
        result.image = attempt(copy_image, fetcher, job)
    for item in job.items:
        result.media[item.position] = attempt(copy_media, fetcher, job, item)
    return result


def attempt(copy, *args):
    try:
        return copy(*args)
    except FetchError as exc:
        return exc
    except Exception as exc:
        log.exception("archiving %s crashed", args[-1].url)
        return FetchError(f"internal error: {exc.__class__.__name__}: {short(exc)}")


def copy_image(fetcher, job):
    """The task's image_url: content-addressed when the task is finished, else a preview
    under the task's own folder."""
    fetched = fetcher.fetch(job.url, job.policy, max_bytes=byte_limit(job.is_video))
    data = fetched.data
    found = inspect_media(data, fetched.content_type)
    sha = hashlib.sha256(data).hexdigest()
    if job.finished:
        return store(data, sha, found)
    image_name = f"previews/{job.pk}/{sha[:16]}.{found.ext}"
    thumb_name = f"previews/{job.pk}/{sha[:16]}-thumb.webp"
    put_file(image_name, data)
    put_file(thumb_name, found.thumb)
    return found.copied(image_name, thumb_name, len(data), sha)


def copy_media(fetcher, job, item):
    """One grid picture or video: always content-addressed (media come with the result)."""
    fetched = fetcher.fetch(item.url, job.policy, max_bytes=byte_limit(item.kind == "video"))
    data = fetched.data
    found = inspect_media(data, fetched.content_type)
    return store(data, hashlib.sha256(data).hexdigest(), found)


def store(data, sha, found):
    folder = "videos" if found.kind == "video" else "images"
    image_name = f"{folder}/{sha[:2]}/{sha[2:]}.{found.ext}"
    thumb_name = f"thumbs/{sha[:2]}/{sha[2:]}.webp"
    put_file(image_name, data)
    put_file(thumb_name, found.thumb)
    return found.copied(image_name, thumb_name, len(data), sha)


def byte_limit(video):
    """The largest download: a video's when the record says one is expected (an image
    that big is refused once its bytes are seen)."""
    mb = settings.MJ_ARCHIVE_MAX_MB
    if video:
        mb = max(mb, settings.MJ_ARCHIVE_MAX_VIDEO_MB)
    return int(mb * 1024 * 1024)


@dataclass
class Inspected:
    kind: str  # "image" or "video"
    ext: str
    mime: str
    width: int
    height: int
    thumb: bytes  # the WebP thumbnail, or a video's poster
    duration: float | None = None

    def copied(self, image_name, thumb_name, size, sha):
        return Copied(
            image_name,
            thumb_name,
            size,
            self.mime,
            self.width,
            self.height,
            sha,
            self.kind,
            self.duration,
        )


def inspect_media(data, claimed_type=""):
    """What the bytes are, decided by the bytes: an MP4 that PyAV decodes (never handed to
    Pillow), else an image Pillow decodes; anything else is a FetchError."""
    if looks_like_mp4(data):
        limit = int(settings.MJ_ARCHIVE_MAX_VIDEO_MB * 1024 * 1024)
        if len(data) > limit:  # fetched under an image's limit, or the video limit is lower
            raise Refused(f"too large: {len(data):,} bytes, the limit for a video is {limit:,}")
        video = inspect_video(data, settings.MJ_ARCHIVE_MAX_PIXELS)
        with video.first_frame as frame:
            poster = make_thumbnail(frame)
        ext, mime = VIDEO_FORMATS["MP4"]
        return Inspected("video", ext, mime, video.width, video.height, poster, video.duration)
    limit = settings.MJ_ARCHIVE_MAX_MB * 1024 * 1024
    if len(data) > limit:  # fetched under a video's limit, and not a video
        raise Refused(f"too large: {len(data):,} bytes, the limit for an image is {limit:,}")
    fmt, width, height, thumb = inspect_image(data, claimed_type)
    ext, mime = FORMATS[fmt]
    return Inspected("image", ext, mime, width, height, thumb)


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
        if TaskMedia.objects.filter(Q(file=name) | Q(thumb_file=name)).exists():
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
