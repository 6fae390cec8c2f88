import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from tasks import deletion
from tasks.alerts import channels as alert_channels
from tasks.alerts import notify as alert_notify
from tasks.alerts import rules as alert_rules
from tasks.archive.display import image_lost, large_url, live_link, thumb_size, thumb_url
from tasks.db import search
from tasks.ingest import sync
from tasks.links import is_web_url
from tasks.models import (
    Account,
    AccountEvent,
    AlertRule,
    ApiToken,
    Channel,
    Delivery,
    ImageState,
    Incident,
    InvalidRecord,
    Price,
    Source,
    SourceKind,
    SyncRun,
    Task,
    TaskEvent,
    new_hook_token,
)
from tasks.redaction import MASK, masker_for

# Tasks per "Refresh from proxy" action: one GET /fetch each, inside the web request,
# which must end well within gunicorn's timeout.
REFRESH_LIMIT = 50


def no_image(task):
    """Why a task that had an image shows none: (a word for the list, a sentence for
    its page); None when it shows one (tasks/archive/display.py decides) or never had one."""
    if image_lost(task):
        return "lost", "image lost: the link expired before it could be copied"
    if thumb_url(task):
        return None
    if task.image_state == ImageState.FAILED:
        return "failed", "no image: copying it failed (see image error below)"
    if is_web_url(task.image_url):
        return "expired", "no image: the proxy's link has expired and no copy was archived"
    if task.image_url:
        return "not http(s)", "no image: the proxy's image URL is not an http(s) link"
    return None


class NoCountPaginator(Paginator):
    """The changelist of a million tasks must not COUNT them on every page.

    It counts at most COUNT_CAP rows (a LIMITed subquery, cheap at any table
    size); past that the admin offers the first COUNT_CAP rows' pages.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list.order_by()[: self.COUNT_CAP].count()


class SavesFormFieldsOnly:
    """Saving a change writes only the columns its form edits.

    The admin reads the row when the POST arrives and a plain save() writes every column
    back. Meanwhile a sync pass renews a source's lease, a notify-hook counts itself, an
    API request stamps a token's last_used: a full save would put the old values back.
    """

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        edited = [f.name for f in obj._meta.concrete_fields if f.name in form.fields]
        obj.save(update_fields=edited)


class SourceForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https", help_text="The part before /mj/...")
    # The secret is write-only: the form never sends the stored value back to the browser.
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")
    # Write-only too, like the secret.
    admin_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="new-api relay: the access token of one of its admins (its personal "
        "settings), to read its admin list /api/mj/ of every task it relayed; required for "
        "that kind. trueai: its admin token, for the Discord accounts. Leave empty to keep "
        "the current token.",
    )
    clear_admin_token = forms.BooleanField(
        required=False, help_text="Remove the stored admin token."
    )

    class Meta:
        model = Source
        fields = ["name", "base_url", "secret", "auth_header", "kind", "enabled"]
        fields += ["allow_private_images", "admin_token", "admin_user"]
        help_texts = {
            "kind": "What the proxy is. Detect tells novicezk's and trueai's apart by what "
            "they answer; a new-api relay is never detected: choose it, and give its admin "
            "credential below (it needs no secret).",
            "admin_user": "new-api relay: that admin's numeric user id (sent as "
            "New-Api-User, which its versions of 2025-2026 require).",
            "auth_header": "The header the secret is sent in: mj-api-secret for "
            "novicezk's proxy, Authorization for trueai's and for relays.",
        }

    def clean_secret(self):
        value = self.cleaned_data["secret"]
        if not value and self.instance.pk:
            return self.instance.secret
        return value

    def clean_admin_token(self):
        value = self.cleaned_data["admin_token"]
        if not value and self.instance.pk:
            return self.instance.admin_token
        return value

    def clean_admin_user(self):
        value = self.cleaned_data["admin_user"].strip()
        if value and not value.isdigit():
            raise forms.ValidationError("A new-api user id is a number, e.g. 1.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("clear_secret"):
            data["secret"] = ""
        if data.get("clear_admin_token"):
            data["admin_token"] = ""
        if data.get("kind") == SourceKind.NEWAPI:
            if not data.get("admin_token"):
                self.add_error(
                    "admin_token",
                    "A new-api relay is read through its admin list: give an admin's access token.",
                )
            if not data.get("admin_user") and "admin_user" not in self.errors:
                self.add_error("admin_user", "Give that admin's user id (New-Api-User).")
        return data


@admin.register(Source)
class SourceAdmin(SavesFormFieldsOnly, admin.ModelAdmin):
    form = SourceForm
    list_display = ["name", "base_url", "kind", "enabled", "shown_secret", "last_sync"]
    readonly_fields = ["shown_secret", "hook", "hooks_received", "hooks_invalid", "last_hook_at"]
    readonly_fields += ["created", "shown_admin_token"]
    actions = ["sync_now", "full_sync_now", "rotate_hook_token"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "kind", "enabled", "allow_private_images"]}),
        (
            "Task endpoints (/mj/task/...)",
            {"fields": ["shown_secret", "secret", "clear_secret", "auth_header"]},
        ),
        (
            "Admin credential (new-api relay: its task list; trueai: its accounts)",
            {"fields": ["shown_admin_token", "admin_token", "clear_admin_token", "admin_user"]},
        ),
        ("Notify-hook", {"fields": ["hook", "hooks_received", "hooks_invalid", "last_hook_at"]}),
        (None, {"fields": ["created"]}),
    ]
    # Never shown to a viewer, not even as text: the credentials, and the hook path,
    # which is a credential to push records.
    WRITE_ONLY = ("secret", "clear_secret", "admin_token", "clear_admin_token", "hook")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        shown = []
        for name, options in fieldsets:
            fields = [f for f in options["fields"] if f not in self.WRITE_ONLY]
            shown.append((name, {**options, "fields": fields}))
        return shown

    @admin.display(description="notify-hook")
    def hook(self, obj):
        if not obj.pk:
            return "—"
        path = reverse("hooks:receive", args=[obj.hook_token])
        return format_html(
            "<code>{}</code><br>Put mjsite's public URL before this path and set it as the "
            "proxy's <code>mj.notify-hook</code>; the path is the credential, keep it secret.",
            path,
        )

    @admin.action(
        description="Rotate the notify-hook token (the old URL stops working)",
        permissions=["change"],
    )
    def rotate_hook_token(self, request, queryset):
        for source in queryset:
            source.hook_token = new_hook_token()
            source.save(update_fields=["hook_token"])
        self.message_user(request, f"New hook URLs for {queryset.count()} source(s).")

    @admin.display(description="secret")
    def shown_secret(self, obj):
        return f"{MASK} (set)" if obj.secret else "—"  # not one character of it

    @admin.display(description="admin token")
    def shown_admin_token(self, obj):
        return f"{MASK} (set)" if obj.admin_token else "—"

    @admin.display(description="last sync")
    def last_sync(self, obj):
        run = obj.sync_runs.order_by("-started").first()
        return f"{run.started:%Y-%m-%d %H:%M} {run.outcome}" if run else "never"

    def run_passes(self, request, queryset, full):
        """Queue one pass per source for the sync worker, as the schedules do: a full pass
        over 100,000 tasks outlasts the web request (nginx gives up after 60 s)."""
        from django_q.tasks import async_task

        kind = "full" if full else "light"
        now = timezone.now()
        for source in queryset:
            if not source.enabled:
                # sync_source_by_id passes over a disabled source, as the schedules do.
                self.message_user(
                    request, f"{source.name} is disabled: no pass queued.", messages.WARNING
                )
                continue
            async_task(sync.sync_source_by_id, source.pk, full, group="mjsite-sync")
            runs = reverse("admin:tasks_syncrun_changelist")
            runs += "?" + urlencode({"source__id__exact": source.pk})
            busy = ""
            if source.lease_until and source.lease_until > now:
                # What sync_source_by_id does when the source's lease is held.
                busy = " A pass of this source is running now: " + (
                    f"this one waits up to {sync.FULL_PASS_WAITS // 60} minutes for it to "
                    "end, else it is recorded as skipped."
                    if full
                    else "unless it has ended when the worker takes this one, this one is "
                    "recorded as skipped."
                )
            message = format_html(
                "{}: {} pass queued for the sync worker; it appears in "
                '<a href="{}">its sync runs</a> when it starts, with its counts when it '
                "ends.{}",
                source.name,
                kind,
                runs,
                busy,
            )
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Sync now (light pass)", permissions=["change"])
    def sync_now(self, request, queryset):
        self.run_passes(request, queryset, full=False)

    @admin.action(description="Sync now (full pass)", permissions=["change"])
    def full_sync_now(self, request, queryset):
        self.run_passes(request, queryset, full=True)


class MasksWhatItShows:
    """Every object a page shows carries the request's masker (tasks/redaction.py) as
    `masker`, for the display methods that show what a proxy sent."""

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        changelist.result_list = [self.masked(request, obj) for obj in changelist.result_list]
        return changelist

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        return obj if obj is None else self.masked(request, obj)

    def masked(self, request, obj):
        obj.masker = masker_for(request)
        return obj


class ReadOnlyAdmin(admin.ModelAdmin):
    """Mirrored data is read-only: it changes only through the sync.

    Without change permission the admin shows its own view-only form (no inputs, no
    Save buttons) and answers a POST to it with 403 before building a form: nothing is
    saved and no LogEntry written, superusers included.
    """

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """A timeline of observed changes: what was seen is never edited, added or deleted."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TaskEventInline(ReadOnlyInline):
    model = TaskEvent
    fields = ["seen", "status", "progress", "via"]
    readonly_fields = fields


class SubmittedFilter(admin.SimpleListFilter):
    """Submitted within the last hour, day, week or month: a range on task_submitted_idx."""

    title = "submitted"
    parameter_name = "submitted"
    WINDOWS = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(hours=24)),
        "7d": ("Last 7 days", timedelta(days=7)),
        "30d": ("Last 30 days", timedelta(days=30)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.WINDOWS.items()] + [
            ("older", "Older than 30 days")
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value in self.WINDOWS:
            return queryset.filter(submitted__gte=timezone.now() - self.WINDOWS[value][1])
        if value == "older":
            return queryset.filter(submitted__lt=timezone.now() - self.WINDOWS["30d"][1])
        return queryset


@admin.register(Task)
class TaskAdmin(MasksWhatItShows, ReadOnlyAdmin):
    """Tasks change only through the sync; a superuser may delete some. A deleted task
    takes its events, its image files (unless shared) and its roll-up hours with it."""

    list_display = ["thumbnail", "task_id", "source", "action", "status", "progress", "submitted"]
    list_display += ["short"]
    list_display_links = ["task_id"]
    list_filter = ["status", "action", "source", SubmittedFilter, "in_queue"]
    search_fields = ["=task_id", "prompt"]  # shows the search box; see get_search_results
    search_help_text = "A task id, or words of the prompt, promptEn, description or fail reason."
    date_hierarchy = None
    ordering = ["-submitted", "-id"]
    list_select_related = ["source"]
    show_full_result_count = False
    paginator = NoCountPaginator
    inlines = [TaskEventInline]
    actions = ["refresh_from_proxy"]
    exclude = ["raw_hash", "raw", "properties"]  # raw and properties: shown redacted

    def delete_model(self, request, obj):
        self.delete_queryset(request, Task.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        rows = list(queryset.values_list(*deletion.COLUMNS))
        deletion.delete_tasks(rows)
        transaction.on_commit(lambda: deletion.delete_unused_files(rows))

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            qs = qs.defer("raw", "properties")
        return qs

    def masked(self, request, task):
        return super().masked(request, task).masker.task(task)

    def get_search_results(self, request, queryset, search_term):
        # The pages' text search (tasks/db/search.py): its index, not a LIKE over every
        # prompt, and the same answers as /tasks/?q= (each word must match; an id matches).
        if not search_term.strip():
            return queryset, False
        return queryset.filter(search.text_filter(search_term, using=queryset.db)), False

    @admin.display(description="image")
    def thumbnail(self, obj):
        missing = no_image(obj)
        if missing:
            word, why = missing
            return format_html('<span title="{}">{}</span>', obj.image_error or why, word)
        url = thumb_url(obj)  # the archived thumbnail, else the proxy's http(s) link
        if not url:
            return "—"
        w, h = thumb_size(obj) or (48, 48)
        scale = 48 / max(w, h)
        return format_html(
            '<img src="{}" loading="lazy" width="{}" height="{}" alt="">',
            url,
            max(1, round(w * scale)),
            max(1, round(h * scale)),
        )

    @admin.display(description="image")
    def image(self, obj):
        """The change page's picture: the archived thumbnail linking to the archived
        original, else the proxy's own http(s) link while it may live (image_urls.py)."""
        missing = no_image(obj)
        if missing:
            return missing[1]
        thumb = thumb_url(obj)
        if not thumb:
            return "—"
        where = (
            "the proxy's link, not archived (yet)"
            if thumb == live_link(obj)
            else "archived copy; click for the original"
        )
        # A size not known (a live link): a width only, so the browser keeps the shape.
        known = thumb_size(obj)
        size = format_html('width="{}" height="{}"', *known) if known else 'width="320"'
        return format_html(
            '<a href="{}"><img src="{}" {} alt="{}"></a><br>{}',
            large_url(obj) or thumb,
            thumb,
            mark_safe(size),  # noqa: S308 (constant text, or format_html's)
            obj.task_id,
            where,
        )

    @admin.display(description="prompt")
    def short(self, obj):
        text = obj.prompt or obj.description
        return format_html("{}", text[:80] + ("…" if len(text) > 80 else ""))

    @admin.action(description="Refresh from proxy", permissions=["change"])
    def refresh_from_proxy(self, request, queryset):
        # One request to the proxy per task, inside this web request: "select all" over
        # a million tasks must not become a million calls. The sync refreshes the rest.
        rows = list(queryset.values_list("source_id", "task_id")[: REFRESH_LIMIT + 1])
        if len(rows) > REFRESH_LIMIT:
            self.message_user(
                request,
                f"Select at most {REFRESH_LIMIT} tasks to refresh at once; "
                "the sync refreshes unfinished tasks by itself.",
                messages.ERROR,
            )
            return
        by_source = {}
        for source_id, task_id in rows:
            by_source.setdefault(source_id, []).append(task_id)
        sources = Source.objects.in_bulk(list(by_source))
        for source_id, ids in by_source.items():
            source = sources[source_id]
            run = sync.refresh_tasks(source, ids)
            level = messages.SUCCESS if run.outcome == SyncRun.Outcome.OK else messages.ERROR
            self.message_user(
                request, run.summary() + (f": {run.error}" if run.error else ""), level
            )

    def has_change_permission(self, request, obj=None):
        # Model-level (obj None: the changelist and its actions), tasks.change_task
        # grants the "Refresh from proxy" action, which writes through the sync and its
        # never-backwards rule. Object-level it is always False: the change form is the
        # admin's view-only page, and a POST to it is refused (403), superusers included;
        # a save there would write the row as read back over whatever a sync had just
        # stored, an older status included.
        if obj is not None:
            return False
        return admin.ModelAdmin.has_change_permission(self, request)

    def get_readonly_fields(self, request, obj=None):
        # raw and properties are shown redacted: proxies echo the notify-hook URL, whose
        # path is the credential, in every record.
        shown = {"raw": "raw_record", "properties": "properties_shown"}
        fields = [shown.get(f.name, f.name) for f in self.model._meta.fields]
        return ["image"] + [f for f in fields if f != "raw_hash"]

    @admin.display(description="raw")
    def raw_record(self, obj):
        return obj.masker.record(obj.raw or "")

    @admin.display(description="properties")
    def properties_shown(self, obj):
        return json.dumps(obj.properties, ensure_ascii=False)  # masked by get_object


@admin.register(SyncRun)
class SyncRunAdmin(MasksWhatItShows, ReadOnlyAdmin):
    list_display = ["started", "source", "kind", "outcome", "fetched", "created", "updated"]
    list_display += ["unchanged", "stale", "invalid", "gone", "duration"]
    list_filter = ["outcome", "kind", "source"]
    ordering = ["-started"]
    show_full_result_count = False
    paginator = NoCountPaginator  # a run a minute per source: no COUNT of them all
    # What the proxy answered when a pass failed: staff only (the overview shows `error`,
    # which quotes none of it), masked.
    exclude = ["error_detail"]
    readonly_fields = ["proxy_answer"]

    @admin.display(description="the proxy's answer")
    def proxy_answer(self, obj):
        return obj.masker.plain(obj.error_detail) or "—"


@admin.register(InvalidRecord)
class InvalidRecordAdmin(MasksWhatItShows, ReadOnlyAdmin):
    list_display = ["received", "source", "task_id", "shown_reason"]
    list_filter = ["source"]
    search_fields = ["=task_id"]
    ordering = ["-received"]
    exclude = ["raw", "reason"]
    readonly_fields = ["shown_reason", "raw_record"]

    @admin.display(description="reason")
    def shown_reason(self, obj):
        return obj.masker.plain(obj.reason)  # it may quote the record

    @admin.display(description="raw")
    def raw_record(self, obj):
        return obj.masker.record(obj.raw or "")  # the notify-hook URL, as for tasks


@admin.register(ApiToken)
class ApiTokenAdmin(SavesFormFieldsOnly, admin.ModelAdmin):
    list_display = ["prefix", "user", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    fields = ["user", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["user", "prefix", "created", "last_used"]

    def has_add_permission(self, request):
        return False  # tokens are made by `manage.py create_api_token`, shown once


# Alerts (tasks/alerts/): rules' thresholds, channels (the URL write-only), incidents.


class AlertRuleForm(forms.ModelForm):
    """The rule's switch, its repeat interval and one number field per threshold of the
    rule (tasks/alerts/rules.py; AlertRuleAdmin.get_form adds them), kept in params."""

    class Meta:
        model = AlertRule
        fields = ["enabled", "repeat_hours"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rule = alert_rules.RULES.get(self.instance.key)
        self.threshold_names = list(rule.params) if rule else []
        current = alert_rules.thresholds(self.instance) if rule else {}
        for name in self.threshold_names:
            self.fields[name].initial = current[name]

    def save(self, commit=True):
        self.instance.params = {
            name: number(self.cleaned_data[name]) for name in self.threshold_names
        }
        return super().save(commit)


def number(value):
    return int(value) if float(value).is_integer() else value


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["key", "title", "enabled", "shown_thresholds", "repeat_hours"]
    readonly_fields = ["key"]

    def get_form(self, request, obj=None, **kwargs):
        rule = alert_rules.RULES.get(obj.key) if obj else None
        thresholds = {
            name: forms.FloatField(min_value=0, help_text=f"default {default}")
            for name, default in (rule.params.items() if rule else ())
        }
        kwargs["form"] = type("AlertRuleForm", (AlertRuleForm,), thresholds)
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="rule")
    def title(self, obj):
        rule = alert_rules.RULES.get(obj.key)
        return rule.title if rule else "—"

    @admin.display(description="thresholds")
    def shown_thresholds(self, obj):
        if obj.key not in alert_rules.RULES:
            return "—"
        return ", ".join(f"{k}={v}" for k, v in alert_rules.thresholds(obj).items())

    def has_add_permission(self, request):
        return False  # one row per rule, made by the migration

    def has_delete_permission(self, request, obj=None):
        return False


class ChannelForm(forms.ModelForm):
    # The URL is a secret (a token, a webhook's path): write-only, never sent back.
    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "An apprise URL (json://host/path, tgram://token/chat, slack://...) or "
            "mailto:someone@example.com; several, comma-separated. Leave empty to keep "
            "the current URL."
        ),
    )

    class Meta:
        model = Channel
        fields = ["name", "url", "enabled", "rules", "sources"]

    def clean_url(self):
        value = self.cleaned_data["url"].strip()
        if not value and self.instance.pk:
            return self.instance.url
        if not value:
            raise forms.ValidationError("A new channel needs a URL.")
        return value


@admin.register(Channel)
class ChannelAdmin(SavesFormFieldsOnly, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "enabled", "kind_of_url", "created"]
    filter_horizontal = ["rules", "sources"]
    actions = ["send_test"]

    @admin.display(description="URL")
    def kind_of_url(self, obj):
        scheme = obj.url.split(":", 1)[0] if ":" in obj.url else ""
        return f"{scheme}:{MASK}" if scheme else MASK

    @admin.action(description="Send a test notification")
    def send_test(self, request, queryset):
        for channel in queryset:
            try:
                alert_notify.send_test(channel)
            except alert_channels.DeliveryError as error:
                self.message_user(
                    request, f"{channel.name}: the test failed: {error.reason}", messages.ERROR
                )
            else:
                self.message_user(request, f"{channel.name}: test sent.", messages.SUCCESS)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["kind", "channel", "state", "attempts", "created", "sent", "next_try", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ["rule", "source", "opened", "resolved", "summary"]
    list_filter = ["rule", "source"]
    ordering = ["-opened"]
    inlines = [DeliveryInline]


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """What a task costs on /usage/ (tasks/usage/prices.py). Staff with the permission
    edit prices; a change is best made as a new row valid from a later day, so the
    months before it keep their cost."""

    list_display = ["action_label", "mode_label", "source", "price", "currency",
                    "charge_failed", "valid_from"]  # fmt: skip
    list_filter = ["source", "mode", "currency", "charge_failed"]
    search_fields = ["action"]
    ordering = ["source", "action", "mode", "-valid_from"]

    @admin.display(description="action", ordering="action")
    def action_label(self, price):
        return price.action or "any other action"

    @admin.display(description="mode", ordering="mode")
    def mode_label(self, price):
        return price.mode or "any mode"


class AccountEventInline(ReadOnlyInline):
    model = AccountEvent
    fields = ["seen", "enabled", "locked", "fast_exhausted", "disabled_reason", "gone"]
    readonly_fields = fields
    ordering = ["-seen"]


@admin.register(Account)
class AccountAdmin(MasksWhatItShows, ReadOnlyAdmin):
    """The Discord accounts (tasks/ingest/accounts.py keeps them, credentials removed)."""

    list_display = ["__str__", "source", "channel_id", "state", "fast_time_remaining",
                    "running", "queued", "last_seen", "gone_since"]  # fmt: skip
    list_filter = ["source", "enabled", "locked", "fast_exhausted"]
    list_select_related = ["source"]
    search_fields = ["name", "channel_id"]
    ordering = ["source", "name"]
    exclude = ["raw"]
    readonly_fields = ["shown_raw"]
    show_full_result_count = False
    inlines = [AccountEventInline]

    @admin.display(description="record (credentials removed)")
    def shown_raw(self, obj):
        try:
            raw = obj.masker.value(json.loads(obj.raw))
        except ValueError:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(raw, indent=2, ensure_ascii=False))


@admin.register(AccountEvent)
class AccountEventAdmin(ReadOnlyAdmin):
    list_display = ["account", "seen", "enabled", "locked", "fast_exhausted",
                    "disabled_reason", "gone"]  # fmt: skip
    list_filter = ["gone", "enabled"]
    list_select_related = ["account"]
    ordering = ["-seen"]
    show_full_result_count = False
