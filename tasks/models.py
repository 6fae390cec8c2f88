import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
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
    # No index of its own: task_source_task_id_uniq starts with source and serves every
    # query by source (an index less for each task the sync writes; migration 0023).
    source = models.ForeignKey(Source, models.PROTECT, related_name="tasks", db_index=False)
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
            # The Discord accounts' figures (tasks/accounts/figures.py): an account's tasks
            # by submit time, status and mode read from the index alone (migration 0014).
            models.Index(
                fields=["account", "-submitted", "status", "mode"],
                name="task_account_submitted_idx",
            ),
            # The list's caller and version filters (tasks/web/filters.py), newest first:
            # one caller is a small share of a big mirror, an old version a rare one, and
            # walking task_submitted_idx for them would read most of it. The account filter
            # uses task_account_submitted_idx; mode, bot and aspect ratio have a few common
            # values each (bench/bench_derive.py): no index of their own.
            models.Index(fields=["caller", "-submitted", "-id"], name="task_caller_idx"),
            models.Index(fields=["version", "-submitted", "-id"], name="task_version_idx"),
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

    # No index of its own: taskevent_task_seen_idx starts with task (migration 0023).
    task = models.ForeignKey(Task, models.CASCADE, related_name="events", db_index=False)
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


# Curation (tasks/curation/): the team's own data beside the mirrored records. Never
# written into raw nor sent to a proxy; a sync updates Task rows in place (never deletes
# them), so these rows stay through every update and after the proxy forgets the task.
# Only deleting the task (purge_tasks, the admin) removes them, by CASCADE.


class Favourite(models.Model):
    """One user's star on one task; each user sees and filters by their own only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="favourites")
    task = models.ForeignKey(Task, models.CASCADE, related_name="favourites")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One star per user and task; its leading user serves the favourite=1 filter.
            models.UniqueConstraint(fields=["user", "task"], name="favourite_user_task_uniq"),
        ]

    def __str__(self):
        return f"{self.user_id} ★ {self.task_id}"


class Tag(models.Model):
    """A free tag, shared by the team."""

    name = models.CharField(max_length=50, unique=True)  # unique: the autocomplete's prefix scan
    created = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.name


class TaskTag(models.Model):
    task = models.ForeignKey(Task, models.CASCADE, related_name="task_tags")
    tag = models.ForeignKey(Tag, models.CASCADE, related_name="task_tags")
    added = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "task tag"
        constraints = [
            # One row per task and tag; its leading task serves a row's tags.
            models.UniqueConstraint(fields=["task", "tag"], name="tasktag_task_tag_uniq"),
        ]
        indexes = [
            # The tag= filter: the tasks of a tag.
            models.Index(fields=["tag", "task"], name="tasktag_tag_task_idx"),
        ]

    def __str__(self):
        return f"{self.task_id} #{self.tag_id}"


class Collection(models.Model):
    """A named, ordered set of tasks: the team's (no owner) or one user's own."""

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="collections",
        help_text="Empty: a team collection everyone sees.",
    )
    cover = models.ForeignKey(
        Task, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("curation:collection", args=[self.pk])


class CollectionItem(models.Model):
    collection = models.ForeignKey(Collection, models.CASCADE, related_name="items")
    task = models.ForeignKey(Task, models.CASCADE, related_name="collection_items")
    position = models.PositiveIntegerField()
    added = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A task is in a collection once.
            models.UniqueConstraint(
                fields=["collection", "task"], name="collectionitem_collection_task_uniq"
            ),
        ]
        indexes = [
            # A collection's page, in its order.
            models.Index(fields=["collection", "position"], name="collectionitem_order_idx"),
            # Purging a task finds its entries.
            models.Index(fields=["task"], name="collectionitem_task_idx"),
        ]

    def __str__(self):
        return f"{self.collection_id}[{self.position}] {self.task_id}"


class ShareLink(models.Model):
    """A link that shows one task or one collection without a login (tasks/curation/sharing.py).

    The URL's token is `key` signed with SECRET_KEY: a link whose token is altered is refused
    before the database is asked, and a copy of the database alone cannot make one."""

    FIELDS = ("prompt", "action", "submitted", "finished")  # what a sharer may tick

    key = models.CharField(max_length=32, unique=True)  # unique: the lookup of /s/<token>/
    task = models.ForeignKey(Task, models.CASCADE, null=True, blank=True, related_name="+")
    collection = models.ForeignKey(
        Collection, models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    fields = models.JSONField(default=list, blank=True)  # the ticked FIELDS
    expires = models.DateTimeField()
    revoked = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)
    last_viewed = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, related_name="share_links"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(task__isnull=False, collection__isnull=True)
                | Q(task__isnull=True, collection__isnull=False),
                name="sharelink_one_target",
            ),
        ]
        indexes = [
            # The "Shared links" page: a user's links, newest first.
            models.Index(fields=["created_by", "-created"], name="sharelink_creator_idx"),
            # Purging a task finds its links.
            models.Index(fields=["task"], name="sharelink_task_idx"),
        ]

    def __str__(self):
        return f"share {self.pk} of {'task' if self.task_id else 'collection'}"


# Alerts (tasks/alerts/): rules, the channels that take their notifications, the incidents
# they open and each notification's deliveries.


class AlertRule(models.Model):
    """One alert rule's switch and thresholds; what each rule checks and its default
    thresholds are in tasks/alerts/rules.py (a missing threshold takes its default)."""

    key = models.SlugField(max_length=40, unique=True)
    enabled = models.BooleanField(default=True)
    params = models.JSONField(default=dict, blank=True)
    repeat_hours = models.PositiveIntegerField(
        default=6, help_text="Notify again while an incident stays open this long (0: never)."
    )
    # What a rule that compares with its last look remembers (the archive's lost count).
    memory = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key


class Channel(models.Model):
    """Where notifications go: an apprise URL (json://, tgram://, slack://...) or mailto:
    addresses sent with Django's email. The URL is a secret: never shown, never logged."""

    name = models.SlugField(max_length=50, unique=True)
    url = models.TextField(help_text="An apprise URL, or mailto:someone@example.com")
    enabled = models.BooleanField(default=True)
    rules = models.ManyToManyField(
        AlertRule, blank=True, related_name="channels", help_text="None chosen: every rule."
    )
    sources = models.ManyToManyField(
        Source, blank=True, related_name="+", help_text="None chosen: every source."
    )
    created = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.name

    def url_secrets(self):
        """The URL, each of its comma-separated URLs and their credentials and paths."""
        from urllib.parse import urlsplit

        found = []
        for url in (self.__dict__.get("url") or "").split(","):
            url = url.strip()
            if not url:
                continue
            parts = urlsplit(url)
            found += [url, parts.netloc + parts.path, parts.password, parts.path.strip("/")]
        return [value for value in found if value and len(value) >= 4]


class Incident(models.Model):
    """A rule's condition on one thing (a source, the archive), from the evaluation that
    found it to the first that did not."""

    rule = models.ForeignKey(AlertRule, models.CASCADE, related_name="incidents")
    source = models.ForeignKey(Source, models.CASCADE, null=True, blank=True, related_name="+")
    key = models.CharField(max_length=100)  # what it is about, e.g. "source:3"
    opened = models.DateTimeField(default=timezone.now)
    resolved = models.DateTimeField(null=True, blank=True)
    last_notified = models.DateTimeField(null=True, blank=True)
    summary = models.TextField()  # what and how bad, as the last evaluation saw it
    link = models.CharField(max_length=500, blank=True)  # the tasks or sync runs behind it

    class Meta:
        constraints = [
            # One open incident per condition: several workers evaluating at once open
            # it once (the loser's INSERT fails) and so notify once.
            models.UniqueConstraint(
                fields=["rule", "key"],
                condition=Q(resolved__isnull=True),
                name="incident_open_uniq",
            ),
        ]
        indexes = [
            # /alerts/ and the overview: the newest incidents.
            models.Index(fields=["-opened"], name="incident_opened_idx"),
        ]

    def __str__(self):
        return f"{self.rule.key} {self.key}"

    def get_absolute_url(self):
        return reverse("alerts:list") + f"#incident-{self.pk}"

    @property
    def duration(self):
        return (self.resolved or timezone.now()) - self.opened


class Delivery(models.Model):
    """One notification of an incident to one channel, with its attempts."""

    class Kind(models.TextChoices):
        OPENED = "opened"
        REPEAT = "repeat"
        RESOLVED = "resolved"

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"  # retried at next_try
        GAVE_UP = "gave_up"

    incident = models.ForeignKey(Incident, models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_try = models.DateTimeField(null=True, blank=True)
    sent = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)  # masked: never the channel's URL

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # Each evaluation's retries: the deliveries still to go out, by when they are due.
            models.Index(
                fields=["next_try"],
                name="delivery_due_idx",
                condition=Q(state__in=["pending", "failed"]),
            ),
        ]

    def __str__(self):
        return f"{self.incident} {self.kind} → {self.channel}: {self.state}"


# Discord accounts (tasks/ingest/accounts.py keeps them, tasks/accounts/ shows them). A
# task names its account by channel id (Task.account), so no foreign key: tasks synced
# before their account was first seen link to it too.


class AccountQuerySet(models.QuerySet):
    def current(self):
        """The accounts their proxy still lists."""
        return self.filter(gone_since__isnull=True)

    def sources_without_enabled_account(self):
        """The sources whose accounts are synced and none of which is enabled now: the
        warning on the accounts page and the overview."""
        usable = self.current().filter(enabled=True).values("source")
        synced = AccountSync.objects.filter(available=True).exclude(source__in=usable)
        return list(
            synced.filter(source__enabled=True)
            .order_by("source__name")
            .values_list("source__name", flat=True)
        )


class Account(models.Model):
    """A Discord account behind a source: the health fields its proxy reports, as
    columns, and its record with every credential removed (tasks/ingest/credentials.py)."""

    source = models.ForeignKey(Source, models.CASCADE, related_name="accounts")
    account_id = models.CharField(max_length=64)  # the proxy's id: channel id or trueai's GUID
    channel_id = models.CharField(max_length=64, blank=True)  # what Task.account holds
    guild_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200, blank=True)  # its name, else its remark
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    locked = models.BooleanField(default=False)  # trueai: held, e.g. by a captcha
    fast_exhausted = models.BooleanField(default=False)
    fast_time_remaining = models.CharField(max_length=100, blank=True)  # as the proxy words it
    today_draws = models.IntegerField(null=True, blank=True)  # the proxy's count, fast + relax
    day_draw_limit = models.IntegerField(null=True, blank=True)  # fast + turbo; -1 unlimited
    day_relax_limit = models.IntegerField(null=True, blank=True)  # -1 unlimited
    running = models.PositiveIntegerField(null=True, blank=True)
    queued = models.PositiveIntegerField(null=True, blank=True)
    core_size = models.PositiveIntegerField(null=True, blank=True)
    queue_size = models.PositiveIntegerField(null=True, blank=True)
    # The proxy's record as JSON text, its credentials removed before it got here.
    raw = models.TextField(default="{}")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    gone_since = models.DateTimeField(null=True, blank=True)  # no longer listed

    objects = AccountQuerySet.as_manager()

    class Meta:
        verbose_name = "Discord account"
        constraints = [
            # The account sync's lookup of what it holds, per source.
            models.UniqueConstraint(
                fields=["source", "account_id"], name="account_source_account_id_uniq"
            ),
        ]
        indexes = [
            # A task's account (the task page links to it) by its channel id.
            models.Index(fields=["channel_id"], name="account_channel_idx"),
        ]

    def __str__(self):
        return self.name or self.channel_id or self.account_id

    def get_absolute_url(self):
        return reverse("accounts:detail", args=[self.pk])

    @property
    def state(self):
        """One word for its chip: gone, disabled, locked, exhausted or enabled."""
        if self.gone_since:
            return "gone"
        if not self.enabled:
            return "disabled"
        if self.locked:
            return "locked"
        if self.fast_exhausted:
            return "exhausted"
        return "enabled"


class AccountEvent(models.Model):
    """One observed change of an account's state (enabled, locked, fast exhausted, its
    disabled reason, listed or gone): its timeline. The row holds the state after it."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="events")
    seen = models.DateTimeField(default=timezone.now)
    enabled = models.BooleanField()
    locked = models.BooleanField()
    fast_exhausted = models.BooleanField()
    disabled_reason = models.TextField(blank=True)
    gone = models.BooleanField(default=False)

    class Meta:
        indexes = [
            # The account page's timeline.
            models.Index(fields=["account", "seen"], name="accountevent_account_seen_idx"),
        ]

    def __str__(self):
        return f"{self.account_id} {self.seen:%Y-%m-%d %H:%M:%S}"


class AccountSync(models.Model):
    """How the last account sync of a source went: one row per source, so "not
    available: <reason>" is said once, not once per pass."""

    source = models.OneToOneField(
        Source, models.CASCADE, primary_key=True, related_name="account_sync"
    )
    checked = models.DateTimeField(default=timezone.now)
    available = models.BooleanField(default=False)
    reason = models.TextField(blank=True)  # why not, in words that quote nothing the proxy sent
    listed = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.source_id}: {'ok' if self.available else self.reason}"


class AccountHour(models.Model):
    """Tasks submitted in one UTC hour on one Discord account, per status and mode: the
    accounts' 24-hour and 7-day figures (tasks/accounts/rollup.py) sum these instead of
    counting a week of tasks."""

    hour = models.DateTimeField()  # the hour's start, UTC
    account = models.CharField(max_length=64)  # Task.account, never ""
    status = models.CharField(max_length=64, blank=True)
    mode = models.CharField(max_length=10, blank=True)
    n = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # One row per combination; its leading hour serves the per-hour deletes.
            models.UniqueConstraint(
                fields=["hour", "account", "status", "mode"], name="accounthour_uniq"
            ),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 {self.account} {self.status} {self.mode} {self.n}"


class AccountTotal(models.Model):
    """AccountHour summed over the whole hours of the accounts page's windows, as a read
    within the hour of AccountRollup.through sees them (AccountRollup.week_from...): the
    page reads these few rows instead of a week of hours."""

    account = models.CharField(max_length=64)
    status = models.CharField(max_length=64, blank=True)
    mode = models.CharField(max_length=10, blank=True)
    week = models.PositiveIntegerField()
    day = models.PositiveIntegerField()
    today = models.PositiveIntegerField()

    def __str__(self):
        return f"{self.account} {self.status} {self.mode} {self.week}/{self.day}/{self.today}"


class AccountRollup(models.Model):
    """The state of AccountHour, in one row (pk 1), kept by tasks/accounts/rollup.py."""

    # Every task submitted before this hour is counted in AccountHour (as of its last
    # roll); later ones are counted live.
    through = models.DateTimeField()
    # When the last refresh that looked for changed tasks had started: the next one
    # re-rolls the hours of tasks changed since (minus a margin).
    scanned = models.DateTimeField()
    # The first hour each of AccountTotal's sums counts from (to `through`).
    week_from = models.DateTimeField(null=True)
    day_from = models.DateTimeField(null=True)
    today_from = models.DateTimeField(null=True)

    def __str__(self):
        return f"accounts rolled through {self.through:%Y-%m-%d %H}:00"


class Price(models.Model):
    """What one task costs on /usage/ (tasks/usage/prices.py): the most specific price
    that matches a task's source, action and mode and is valid on the day it was
    submitted. A change is a new row from a later day: past months keep their prices."""

    class Mode(models.TextChoices):
        ANY = "", "any mode"
        FAST = "fast", "fast"
        RELAX = "relax", "relax"
        TURBO = "turbo", "turbo"

    # Blank: any action without a price of its own.
    action = models.CharField(max_length=64, blank=True, help_text="Blank: any other action.")
    mode = models.CharField(max_length=10, blank=True, choices=Mode.choices)
    # None: every source without a price of its own for this action and mode.
    source = models.ForeignKey(
        Source, models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    price = models.DecimalField(max_digits=12, decimal_places=4, help_text="Per task.")
    currency = models.CharField(max_length=3, default="USD")
    charge_failed = models.BooleanField(
        default=False,
        help_text="Charge failed and cancelled tasks too. Without it only those the proxy "
        "says it charged are (new-api's quota on a failed row).",
    )
    valid_from = models.DateField(default=timezone.localdate, help_text="In TIME_ZONE.")

    class Meta:
        ordering = ["source", "action", "mode", "-valid_from"]
        constraints = [
            # One price per kind of task and day: the lookup never has to choose between two.
            models.UniqueConstraint(
                fields=["action", "mode", "valid_from"],
                condition=Q(source__isnull=True),
                name="price_default_uniq",
            ),
            models.UniqueConstraint(
                fields=["source", "action", "mode", "valid_from"],
                condition=Q(source__isnull=False),
                name="price_source_uniq",
            ),
        ]

    def __str__(self):
        action = self.action or "any action"
        return f"{action} {self.mode or 'any mode'}: {self.price} {self.currency}"


class DailyUsage(models.Model):
    """Tasks submitted on one day (in TIME_ZONE) per source, caller, account, action,
    mode and status: what /usage/ sums (tasks/usage/rollup.py) instead of the tasks."""

    day = models.DateField()
    source = models.ForeignKey(Source, models.CASCADE, related_name="+", db_index=False)
    caller = models.CharField(max_length=200, blank=True)
    account = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, blank=True)
    mode = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=64, blank=True)
    tasks = models.PositiveIntegerField()
    run_seconds = models.FloatField(default=0)  # finish - start, over those with both
    # Failed or cancelled, yet charged by the proxy (new-api's quota > 0 on the row).
    quota_charged = models.PositiveIntegerField(default=0)
    # Priced when the day is rolled (tasks/usage/prices.py): how many of the tasks are
    # charged, in which currency ("": no price applies), and their cost in COST_UNITs.
    charged = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    cost = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            # One row per combination; its leading day serves /usage/'s range reads and
            # the roll-up's deletes of the days it recomputes.
            models.UniqueConstraint(
                fields=["day", "source", "caller", "account", "action", "mode", "status"],
                name="dailyusage_day_uniq",
            ),
        ]

    def __str__(self):
        return f"{self.day} {self.source_id} {self.caller} {self.action} {self.status} {self.tasks}"


class UsageCell(models.Model):
    """DailyUsage summed per day over one grouping (its `dimensions`, the others left
    blank), statuses folded into figures: what /usage/ reads for a pair of groupings
    (tasks/usage/cells.py), a few rows where DailyUsage holds thousands."""

    dimensions = models.CharField(max_length=40)  # e.g. "action,caller", sorted
    day = models.DateField()
    source = models.ForeignKey(
        Source, models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    caller = models.CharField(max_length=200, blank=True, db_default="")
    account = models.CharField(max_length=64, blank=True, db_default="")
    action = models.CharField(max_length=64, blank=True, db_default="")
    mode = models.CharField(max_length=10, blank=True, db_default="")
    currency = models.CharField(max_length=3, blank=True)
    tasks = models.PositiveIntegerField()
    succeeded = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    cancelled = models.PositiveIntegerField()
    run_seconds = models.FloatField()
    quota_charged = models.PositiveIntegerField()
    charged = models.PositiveIntegerField()
    charged_failed = models.PositiveIntegerField()  # failed or cancelled, yet charged
    cost = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["dimensions", "day"], name="usagecell_dims_day_idx")]

    def __str__(self):
        return f"{self.day} {self.dimensions} {self.tasks}"


class UsageRollup(models.Model):
    """The state of DailyUsage, in one row (pk 1), kept by tasks/usage/rollup.py."""

    zone = models.CharField(max_length=64)  # the TIME_ZONE its days are in
    # Every task submitted before this hour is counted in DailyUsage (as of its last
    # roll); later ones are counted live.
    through = models.DateTimeField()
    # When the last refresh that rolled days had started: the next one re-rolls the
    # days of tasks changed since (minus a margin).
    scanned = models.DateTimeField()
    # A price saved or deleted since the last roll: the days from this one on are
    # priced again by the next refresh (tasks/usage/rollup.py).
    stale_from = models.DateField(null=True, blank=True)

    def __str__(self):
        return f"usage rolled through {self.through:%Y-%m-%d %H}:00 ({self.zone})"


# Prices are applied when a day is rolled, so a change marks the days it may change: those
# from its valid_from on (never earlier ones), or from its old valid_from where earlier.
# Signals, so that the admin's bulk delete and a shell's save count too; marked once the
# price is written, so that a refresh that sees the mark sees the price.


@receiver(pre_save, sender=Price)
def remember_valid_from(sender, instance, **kwargs):
    days = [Price._meta.get_field("valid_from").to_python(instance.valid_from)]
    if instance.pk:
        days += Price.objects.filter(pk=instance.pk).values_list("valid_from", flat=True)
    instance.changes_from = min(days)


@receiver(post_save, sender=Price)
def reprice_saved_price(sender, instance, **kwargs):
    reprice_from(instance.changes_from)


@receiver(post_delete, sender=Price)
def reprice_deleted_price(sender, instance, **kwargs):
    reprice_from(instance.valid_from)


def reprice_from(day):
    """Mark the usage days from `day` on for pricing again (a refresh holds the row
    locked while it rolls: this waits for it, and the next refresh sees the mark)."""
    UsageRollup.objects.filter(pk=1).filter(
        Q(stale_from__isnull=True) | Q(stale_from__gt=day)
    ).update(stale_from=day)
