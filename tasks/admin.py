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

from . import deletion, sync
from .image_urls import image_lost, thumb_size, thumb_url
from .models import (
    ApiToken,
    InvalidRecord,
    Source,
    SyncRun,
    Task,
    TaskEvent,
    mask_secret,
    new_hook_token,
)
from .views import redact, secret_values


class NoCountPaginator(Paginator):
    """The changelist of a million tasks must not COUNT them on every page.

    It counts at most COUNT_CAP rows (a LIMITed subquery, cheap at any table
    size); past that the admin offers the first COUNT_CAP rows' pages.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list.order_by()[: self.COUNT_CAP].count()


class SourceForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https", help_text="The part before /mj/...")
    # The secret is write-only: the form never sends the stored value back to the browser.
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")

    class Meta:
        model = Source
        fields = ["name", "base_url", "secret", "auth_header", "kind", "enabled"]
        fields += ["allow_private_images"]

    def clean_secret(self):
        value = self.cleaned_data["secret"]
        if not value and self.instance.pk:
            return self.instance.secret
        return value

    def clean(self):
        data = super().clean()
        if data.get("clear_secret"):
            data["secret"] = ""
        return data


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ["name", "base_url", "kind", "enabled", "shown_secret", "last_sync"]
    readonly_fields = ["shown_secret", "hook", "hooks_received", "hooks_invalid", "last_hook_at"]
    readonly_fields += ["created"]
    actions = ["sync_now", "full_sync_now", "rotate_hook_token"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # View-only (the "viewer" group) shows every field as text: never the stored
            # secret, and not the hook path either, which is a credential to push records.
            fields = [f for f in fields if f not in ("secret", "clear_secret", "hook")]
        return fields

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
        return mask_secret(obj.secret) or "—"

    @admin.display(description="last sync")
    def last_sync(self, obj):
        run = obj.sync_runs.order_by("-started").first()
        return f"{run.started:%Y-%m-%d %H:%M} {run.outcome}" if run else "never"

    def run_passes(self, request, queryset, full):
        for source in queryset:
            run = sync.sync_source(source, full=full)
            level = messages.SUCCESS if run.outcome == SyncRun.Outcome.OK else messages.ERROR
            self.message_user(
                request, run.summary() + (f": {run.error}" if run.error else ""), level
            )

    @admin.action(description="Sync now (light pass)", permissions=["change"])
    def sync_now(self, request, queryset):
        self.run_passes(request, queryset, full=False)

    @admin.action(description="Sync now (full pass)", permissions=["change"])
    def full_sync_now(self, request, queryset):
        self.run_passes(request, queryset, full=True)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Mirrored data is read-only: it changes only through the sync."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    fields = ["seen", "status", "progress", "via"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


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
class TaskAdmin(ReadOnlyAdmin):
    """Tasks change only through the sync; a superuser may delete some. A deleted task
    takes its events, its image files (unless shared) and its roll-up hours with it."""

    list_display = ["thumbnail", "task_id", "source", "action", "status", "progress", "submitted"]
    list_display += ["short"]
    list_display_links = ["task_id"]
    list_filter = ["status", "action", "source", SubmittedFilter, "in_queue"]
    search_fields = ["=task_id", "prompt"]
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

    @admin.display(description="image")
    def thumbnail(self, obj):
        if image_lost(obj):
            return "lost"
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

    @admin.display(description="prompt")
    def short(self, obj):
        text = obj.prompt or obj.description
        return format_html("{}", text[:80] + ("…" if len(text) > 80 else ""))

    @admin.action(description="Refresh from proxy", permissions=["change"])
    def refresh_from_proxy(self, request, queryset):
        by_source = {}
        for task in queryset.select_related("source"):
            by_source.setdefault(task.source, []).append(task.task_id)
        for source, ids in by_source.items():
            run = sync.refresh_tasks(source, ids)
            level = messages.SUCCESS if run.outcome == SyncRun.Outcome.OK else messages.ERROR
            self.message_user(
                request, run.summary() + (f": {run.error}" if run.error else ""), level
            )

    def has_change_permission(self, request, obj=None):
        # The refresh action needs the changelist's action form, so those with
        # tasks.change_task (not the "viewer" group) have it; edits stay impossible
        # because every field is read-only.
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def get_readonly_fields(self, request, obj=None):
        # raw and properties are shown redacted: proxies echo the notify-hook URL, whose
        # path is the credential, in every record.
        shown = {"raw": "raw_record", "properties": "properties_shown"}
        return [shown.get(f.name, f.name) for f in self.model._meta.fields if f.name != "raw_hash"]

    @admin.display(description="raw")
    def raw_record(self, obj):
        return redact(obj.raw or "", secret_values())

    @admin.display(description="properties")
    def properties_shown(self, obj):
        return redact(json.dumps(obj.properties, ensure_ascii=False), secret_values())


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["started", "source", "kind", "outcome", "fetched", "created", "updated"]
    list_display += ["unchanged", "stale", "invalid", "gone", "duration"]
    list_filter = ["outcome", "kind", "source"]
    ordering = ["-started"]
    show_full_result_count = False


@admin.register(InvalidRecord)
class InvalidRecordAdmin(ReadOnlyAdmin):
    list_display = ["received", "source", "task_id", "reason"]
    list_filter = ["source"]
    search_fields = ["=task_id"]
    ordering = ["-received"]
    exclude = ["raw"]
    readonly_fields = ["raw_record"]

    @admin.display(description="raw")
    def raw_record(self, obj):
        return redact(obj.raw or "", secret_values())  # the notify-hook URL, as for tasks


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    fields = ["user", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["user", "prefix", "created", "last_used"]

    def has_add_permission(self, request):
        return False  # tokens are made by `manage.py create_api_token`, shown once
