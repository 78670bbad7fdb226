import segno
from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from . import profiles
from .models import MergeRun, Node, OutputProfile, ProbeResult, Source, SourceResult


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "last_ok_at", "last_node_count", "consecutive_failures", "last_error")
    list_filter = ("enabled",)
    search_fields = ("name", "url", "notes")
    readonly_fields = (
        "etag",
        "last_modified",
        "userinfo",
        "last_fetched_at",
        "last_ok_at",
        "last_error",
        "last_node_count",
        "consecutive_failures",
        "created_at",
        "updated_at",
    )
    actions = ("enable", "disable")

    @admin.action(description=_("Enable the selected sources"))
    def enable(self, request, queryset):
        queryset.update(enabled=True)

    @admin.action(description=_("Disable the selected sources"))
    def disable(self, request, queryset):
        queryset.update(enabled=False)


class SourceResultInline(admin.TabularInline):
    model = SourceResult
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    fields = ("label", "ok", "http_status", "format", "entries", "nodes", "invalid", "error", "elapsed_ms")
    readonly_fields = fields


@admin.register(MergeRun)
class MergeRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "trigger",
        "created_at",
        "duration",
        "sources_ok",
        "sources_failed",
        "unique",
    )
    list_filter = ("status", "trigger")
    readonly_fields = [field.name for field in MergeRun._meta.fields]
    inlines = [SourceResultInline]

    # Runs and their results are written by merges only, so the admin offers no "Add" for them.
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("duration"))
    def duration(self, run: MergeRun) -> str | None:
        seconds = run.duration
        return None if seconds is None else _("%(seconds).1f s") % {"seconds": seconds}


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "protocol", "host", "port", "last_seen")
    list_filter = ("protocol",)
    search_fields = ("name", "host", "fingerprint")
    readonly_fields = ("fingerprint", "first_seen", "last_seen", "last_run", "link", "data", "origins")
    list_select_related = False
    show_full_result_count = False


class OutputProfileForm(forms.ModelForm):
    class Meta:
        model = OutputProfile
        fields = (
            "name",
            "include_regex",
            "exclude_regex",
            "protocols",
            "ports",
            "regions",
            "alive_only",
            "max_latency_ms",
            "top_n",
            "per_protocol_cap",
            "sort",
            "rename_template",
            "default_format",
            "userinfo_policy",
            "update_interval_hours",
            "expires_at",
            "revoked",
        )

    def clean(self):
        cleaned = super().clean()
        field_names = {field.name for field in OutputProfile._meta.fields}
        # Errors come back keyed by field, so each shows beside the setting that contains it.
        values = {key: value for key, value in cleaned.items() if key in field_names}
        profiles.validate_profile(OutputProfile(**values))
        return cleaned


@admin.register(OutputProfile)
class OutputProfileAdmin(admin.ModelAdmin):
    form = OutputProfileForm
    change_form_template = "admin/merger/outputprofile/change_form.html"
    list_display = ("name", "default_format", "sort", "alive_only", "top_n", "revoked", "expires_at")
    list_filter = ("revoked", "default_format")
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")
    actions = ("rotate_tokens", "revoke_profiles")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        profile = self.get_object(request, object_id)
        if profile is not None and self.has_view_or_change_permission(request, profile):
            url = profiles.subscription_url(profile, request)
            extra_context["subscription_url"] = url
            # An SVG data URI needs no image library and no file on disk.
            extra_context["subscription_qr"] = segno.make(url, error="m").svg_data_uri(scale=4)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description=_("Give the selected profiles new tokens (old URLs stop working)"))
    def rotate_tokens(self, request, queryset):
        for profile in queryset:
            profiles.rotate_token(profile)
        self.message_user(request, _("New tokens issued."), messages.SUCCESS)

    @admin.action(description=_("Revoke the selected profiles"))
    def revoke_profiles(self, request, queryset):
        for profile in queryset:
            profiles.revoke(profile)
        self.message_user(request, _("Profiles revoked."), messages.SUCCESS)


@admin.register(ProbeResult)
class ProbeResultAdmin(admin.ModelAdmin):
    list_display = ("node", "kind", "alive", "latency_ms", "checked_at", "error")
    list_filter = ("kind", "alive")
    search_fields = ("node__name", "node__host", "error")
    list_select_related = ("node",)
    raw_id_fields = ("node", "run")
    date_hierarchy = "checked_at"
    show_full_result_count = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False
