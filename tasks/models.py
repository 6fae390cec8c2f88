import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

# Statuses after which a task never changes again upstream (CANCEL: plus and trueai).
FINISHED_STATUSES = ("SUCCESS", "FAILURE", "CANCEL")


class SourceKind(models.TextChoices):
    AUTO = "auto", "Detect"
    NOVICEZK = "novicezk", "midjourney-proxy (novicezk, plus)"
    TRUEAI = "trueai", "trueai-org midjourney-proxy (list holds the newest 100)"
    RELAY = "relay", "API relay (no list or queue endpoint)"
    NEWAPI = "newapi", "new-api relay (tasks listed by its admin API)"


def new_hook_token():
    return secrets.token_urlsafe(32)


class Source(models.Model):
    name = models.SlugField(max_length=50, unique=True)
    base_url = models.URLField(max_length=500, help_text="The part before /mj/...")
    secret = models.CharField(max_length=500, blank=True)
    auth_header = models.CharField(max_length=100, default="mj-api-secret")
    # The proxy's admin credential: trueai's admin token (its accounts), new-api's admin
    # access token (its /api/mj/ list of every relayed task). A secret, like `secret`.
    admin_token = models.CharField(max_length=500, blank=True)
    # new-api: the admin's numeric user id, sent as New-Api-User.
    admin_user = models.CharField(max_length=20, blank=True)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.AUTO)
    enabled = models.BooleanField(default=True)
    allow_private_images = models.BooleanField(
        default=False, help_text="Fetch images from private or loopback addresses too."
    )
    # What base_url's host resolved to after the last pass that worked ({"host", "port",
    # "addresses"}): the image archive trusts the source's own host and port at these
    # addresses only (tasks/archive/fetch.py), not at whatever its name answers later.
    resolved_addresses = models.JSONField(default=dict, blank=True, editable=False)
    hook_token = models.CharField(max_length=64, unique=True, default=new_hook_token)
    last_hook_at = models.DateTimeField(null=True, blank=True)
    hooks_received = models.PositiveIntegerField(default=0)
    hooks_invalid = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    # The per-source sync lease: a pass claims it with a conditional UPDATE, so one
    # pass per source runs at a time across every worker and host; a pass that dies
    # holding it loses it when the lease runs out.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name

    def auth_headers(self):
        if not self.secret:
            return {}
        return {self.auth_header or "mj-api-secret": self.secret}


class ImageState(models.TextChoices):
    NONE = "none", "No image"
    PENDING = "pending", "Not archived yet"
    ARCHIVED = "archived", "Archived"
    FAILED = "failed", "Archiving failed"
    LOST = "lost", "Link expired before it could be copied"


class TaskQuerySet(models.QuerySet):
    def unfinished(self):
        # Constants in the SQL, so that SQLite uses task_unfinished_idx (tasks/db/lookups.py).
        return self.exclude(status__const_in=FINISHED_STATUSES).filter(gone_since__isnull=True)

    def pending_images(self):
        # Constants in the SQL, so that SQLite uses task_image_pending_idx.
        return self.filter(image_state__const=ImageState.PENDING.value)

    def for_list(self):
        return self.select_related("source").defer("raw", "properties")


class Task(models.Model):
    source = models.ForeignKey(Source, models.PROTECT, related_name="tasks")
    task_id = models.CharField(max_length=64)
    action = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=64, blank=True)
    prompt = models.TextField(blank=True)
    prompt_en = models.TextField(blank=True)
    description = models.TextField(blank=True)
    state = models.TextField(blank=True)
    progress = models.CharField(max_length=64, blank=True)
    progress_pct = models.SmallIntegerField(null=True, blank=True)
    image_url = models.TextField(blank=True)
    fail_reason = models.TextField(blank=True)
    submitted = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)

    # Derived from the record when it is stored (tasks/ingest/derive.py), kept beside raw
    # for the filters, facets and reports; raw stays the truth.
    mode = models.CharField(max_length=10, blank=True)  # fast, relax or turbo
    request_mode = models.CharField(max_length=10, blank=True)  # the mode asked for
    version = models.CharField(max_length=20, blank=True)  # "6.1", "niji 6"
    aspect = models.CharField(max_length=20, blank=True)  # --ar, e.g. "16:9"
    seed = models.CharField(max_length=40, blank=True)
    bot = models.CharField(max_length=20, blank=True)  # MID_JOURNEY, NIJI_JOURNEY
    account = models.CharField(max_length=64, blank=True)  # the Discord channel id
    caller = models.CharField(max_length=200, blank=True)  # userId, user_id, else state
    parent_task_id = models.CharField(max_length=64, blank=True)
    # The task's pictures and videos beyond image_url, in the record's order:
    # [{"kind": "image" or "video", "url": ..., "thumbnail": ...}] (imageUrls, videoUrls).
    media = models.JSONField(default=list, blank=True)
    is_video = models.BooleanField(default=False)
    video_duration = models.FloatField(null=True, blank=True)  # seconds, as the proxy said

    # The last record received, as JSON text with the proxy's key order (jsonb
    # would reorder it), and a hash of it so an unchanged record is never rewritten.
    raw = models.TextField()
    raw_hash = models.CharField(max_length=32)

    # Bookkeeping
    first_seen = models.DateTimeField(default=timezone.now)
    last_changed = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(
        default=timezone.now,
        help_text="Last pass that saw it upstream (to within an hour: see sync.LAST_SEEN_EVERY).",
    )
    in_queue = models.BooleanField(default=False)
    gone_since = models.DateTimeField(null=True, blank=True)

    # The image archive (tasks/archive/passes.py): a copy of image_url taken while the link lives.
    image_state = models.CharField(
        max_length=10, choices=ImageState.choices, default=ImageState.NONE
    )
    image_file = models.CharField(max_length=300, blank=True)  # storage name of the original
    thumb_file = models.CharField(max_length=300, blank=True)  # storage name of the WebP thumbnail
    archived_url = models.TextField(blank=True)  # the image_url that was copied
    image_bytes = models.PositiveIntegerField(null=True, blank=True)
    image_type = models.CharField(max_length=50, blank=True)
    image_width = models.PositiveIntegerField(null=True, blank=True)
    image_height = models.PositiveIntegerField(null=True, blank=True)
    image_sha256 = models.CharField(max_length=64, blank=True)
    image_expires = models.DateTimeField(null=True, blank=True)  # from Discord's ex=
    image_attempts = models.PositiveSmallIntegerField(default=0)
    image_next_try = models.DateTimeField(null=True, blank=True)
    image_error = models.TextField(blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = "Midjourney task"
        constraints = [
            # The sync's upserts and every lookup by the proxy's id.
            models.UniqueConstraint(fields=["source", "task_id"], name="task_source_task_id_uniq"),
        ]
        indexes = [
            # The task list and the mirror API's /list: newest first, keyset on (submitted, id).
            # Status, action and source ride along so that the list's facet counts over
            # the newest matches and the roll-up's live hour never read the table.
            models.Index(
                fields=["-submitted", "-id", "status", "action", "source"],
                name="task_submitted_idx",
            ),
            # The task list filtered by status and action.
            models.Index(fields=["status", "action", "-submitted"], name="task_status_action_idx"),
            # /mj/task/fetch and the detail page look a task up by id across sources.
            models.Index(fields=["task_id"], name="task_task_id_idx"),
            # The light pass: the unfinished tasks the mirror must refresh.
            models.Index(
                fields=["source", "status"],
                name="task_unfinished_idx",
                condition=~Q(status__in=FINISHED_STATUSES) & Q(gone_since__isnull=True),
            ),
            # The archiver's work queue: images not copied yet, soonest-to-expire first.
            models.Index(
                fields=["image_expires", "image_next_try"],
                name="task_image_pending_idx",
                condition=Q(image_state="pending"),
            ),
            # The mirror API's /queue.
            models.Index(
                fields=["source", "submitted"], name="task_in_queue_idx", condition=Q(in_queue=True)
            ),
            # The overview's roll-up (tasks/reports/rollup.py): the hours of recently changed tasks.
            models.Index(fields=["last_changed"], name="task_last_changed_idx"),
        ]

    def __str__(self):
        return self.task_id

    def save(self, *args, **kwargs):
        if getattr(self, "masked_for_display", False):
            # Its text was masked for a page (tasks/redaction.py): saving it would
            # overwrite what the proxy sent.
            raise ValueError("a task masked for display is never saved")
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("tasks:detail", args=[self.task_id]) + f"?source={self.source.name}"

    @property
    def is_finished(self):
        return self.status in FINISHED_STATUSES


class TaskMedia(models.Model):
    """The archived copy of one entry of a task's `media` (a grid picture, a video): the
    archive pass (tasks/archive/passes.py) copies them with the task's own image_url."""

    task = models.ForeignKey(Task, models.CASCADE, related_name="media_copies")
    position = models.PositiveSmallIntegerField()  # its index in Task.media
    kind = models.CharField(max_length=10)  # "image" or "video"
    url = models.TextField()  # the link that was copied
    state = models.CharField(max_length=10, choices=ImageState.choices, default=ImageState.PENDING)
    file = models.CharField(max_length=300, blank=True)  # storage name of the original or MP4
    thumb_file = models.CharField(max_length=300, blank=True)  # WebP thumbnail or poster
    bytes = models.PositiveIntegerField(null=True, blank=True)
    mime = models.CharField(max_length=50, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)  # a video's, read from the file
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    copied = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "task media"
        constraints = [
            models.UniqueConstraint(
                fields=["task", "position"], name="taskmedia_task_position_uniq"
            ),
        ]

    def __str__(self):
        return f"{self.task_id} #{self.position} {self.kind} {self.state}"


class TaskEvent(models.Model):
    """One observed change of a task's status, progress or image: its timeline."""

    task = models.ForeignKey(Task, models.CASCADE, related_name="events")
    seen = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=64, blank=True)
    progress = models.CharField(max_length=64, blank=True)
    image_url = models.TextField(blank=True)
    via = models.CharField(max_length=10, default="poll")  # "poll" or "hook"

    class Meta:
        indexes = [
            # The detail page's timeline.
            models.Index(fields=["task", "seen"], name="taskevent_task_seen_idx"),
        ]

    def __str__(self):
        return f"{self.task_id} {self.status} {self.progress}"


class ArchiveStatus(models.Model):
    """The image archive's counts for the overview, in one row (pk 1) kept by the archive
    passes (tasks/archive/passes.py): a GROUP BY over a million tasks is too slow for a page."""

    archived = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0)
    counted = models.DateTimeField()  # the last full recount
    updated = models.DateTimeField()  # the last change

    class Meta:
        verbose_name_plural = "archive status"

    def __str__(self):
        return f"archived={self.archived} failed={self.failed} lost={self.lost}"


class SyncRun(models.Model):
    class Kind(models.TextChoices):
        LIGHT = "light"
        FULL = "full"

    class Outcome(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"
        SKIPPED = "skipped"

    source = models.ForeignKey(Source, models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    started = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    stale = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    gone = models.PositiveIntegerField(default=0)
    # Why it failed, in words that quote nothing the proxy sent: the overview and the
    # refresh button show it to everyone. What the proxy answered (an excerpt) is in
    # error_detail, for staff (the admin, masked) and the shell (sync_tasks).
    error = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    # Which process ran it ("host:pid"): with several worker hosts, where to look.
    worker = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [
            # Sync health on the overview: the latest runs of each source.
            models.Index(fields=["source", "-started"], name="syncrun_source_started_idx"),
        ]

    def __str__(self):
        return f"{self.source} {self.kind} {self.started:%Y-%m-%d %H:%M:%S} {self.outcome}"

    @property
    def duration(self):
        if self.ended:
            return self.ended - self.started
        return None

    def summary(self):
        return (
            f"{self.source.name}: {self.outcome} {self.kind} pass, fetched={self.fetched} "
            f"created={self.created} updated={self.updated} unchanged={self.unchanged} "
            f"stale={self.stale} invalid={self.invalid} gone={self.gone}"
        )


class HourlyCount(models.Model):
    """How many tasks were submitted in one UTC hour, per source, status, action and
    fail reason: the overview's figures (tasks/reports/rollup.py), summed over hours instead of
    counted over a month of tasks."""

    REASON_LENGTH = 200  # fail reasons are grouped by their first 200 characters

    hour = models.DateTimeField()  # the hour's start, UTC
    # No index of its own: only deleting a source looks rows up by it (a scan of a
    # table of a few thousand rows per day kept).
    source = models.ForeignKey(Source, models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=REASON_LENGTH, blank=True)  # "" unless FAILURE
    n = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # One row per combination, so two roll-ups of one hour cannot both count it;
            # its leading hour serves the overview's range reads and the per-hour deletes.
            models.UniqueConstraint(
                fields=["hour", "source", "status", "action", "reason"],
                name="hourlycount_hour_uniq",
            ),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.source_id} {self.status} {self.action} {self.n}"


class RolledHour(models.Model):
    """An hour whose HourlyCount rows are computed; an hour without a row is rolled
    (again) by the next refresh. The current hour never has one."""

    hour = models.DateTimeField(primary_key=True)  # the hour's start, UTC
    # When the last refresh that looked for changed tasks had started, as of this hour's
    # roll: the next one re-rolls the hours of tasks changed since (minus a margin).
    computed = models.DateTimeField()

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 rolled {self.computed:%Y-%m-%d %H:%M:%S}"


class InvalidRecord(models.Model):
    """A record the proxy sent that could not be stored as a task, kept raw with the reason."""

    source = models.ForeignKey(Source, models.CASCADE, related_name="invalid_records")
    sync_run = models.ForeignKey(SyncRun, models.SET_NULL, null=True, blank=True)
    received = models.DateTimeField(default=timezone.now)
    task_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    raw = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["source", "-received"], name="invalid_source_received_idx")]

    def __str__(self):
        return f"{self.task_id or '(no id)'}: {self.reason}"


class ApiToken(models.Model):
    """A token for the mirror API, stored as a hash; the clear text is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    def __str__(self):
        return f"{self.prefix}… ({self.user})"
