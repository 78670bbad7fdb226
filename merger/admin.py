from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import MergeRun, Node, Source, SourceResult


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
    fields = ("label", "ok", "http_status", "format", "entries", "nodes", "invalid", "error", "elapsed_ms")
    readonly_fields = fields


@admin.register(MergeRun)
class MergeRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "trigger", "created_at", "duration", "sources_ok", "sources_failed", "unique")
    list_filter = ("status", "trigger")
    readonly_fields = [field.name for field in MergeRun._meta.fields]
    inlines = [SourceResultInline]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "protocol", "host", "port", "last_seen")
    list_filter = ("protocol",)
    search_fields = ("name", "host", "fingerprint")
    readonly_fields = ("fingerprint", "first_seen", "last_seen", "last_run", "link", "data", "origins")
    list_select_related = False
    show_full_result_count = False
