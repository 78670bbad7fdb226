"""Admin for deployments, backups and the installed-version history: read-only records.

Deployments are started with `manage.py deploy` or the web UI, never by adding a row here.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from . import services
from .models import Backup, Deployment, InstalledVersion


class RecordAdmin(admin.ModelAdmin):
    """Rows written by the deployment service: viewable and deletable, never hand-edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class BackupInline(admin.TabularInline):
    model = Backup
    extra = 0
    can_delete = False
    fields = ("kind", "path", "size", "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Deployment)
class DeploymentAdmin(RecordAdmin):
    list_display = ("id", "kind", "version", "dry_run", "status", "started_by", "created_at", "duration")
    list_filter = ("status", "kind", "dry_run")
    search_fields = ("version", "started_by", "error")
    date_hierarchy = "created_at"
    fields = (
        "kind",
        "version",
        "previous_version",
        "status",
        "dry_run",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
        "backup",
        "error",
        "plan_list",
        "steps_table",
    )
    readonly_fields = fields
    inlines = (BackupInline,)
    actions = ("mark_failed",)

    @admin.action(
        description=_("Mark running deployments failed (their process has stopped)"), permissions=["delete"]
    )
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        released = sum(services.abandon_deployment(pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            _("%(count)d running deployment(s) marked failed.") % {"count": released},
            messages.SUCCESS,
        )

    @admin.display(description=_("plan"))
    def plan_list(self, obj: Deployment) -> str:
        if not obj.plan:
            return "-"
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((item,) for item in obj.plan)))

    @admin.display(description=_("steps"))
    def steps_table(self, obj: Deployment) -> str:
        if not obj.steps:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}.{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            (
                (
                    step["phase"],
                    step["name"],
                    step["status"],
                    step.get("duration_ms") or "",
                    step.get("output", ""),
                )
                for step in obj.steps
            ),
        )
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("step"),
            _("status"),
            _("ms"),
            _("output"),
        )
        return format_html("<table>{}{}</table>", header, rows)


@admin.register(Backup)
class BackupAdmin(RecordAdmin):
    list_display = ("id", "deployment", "kind", "size", "created_at", "path")
    list_filter = ("kind",)
    search_fields = ("path", "sha256")
    readonly_fields = ("deployment", "kind", "path", "sha256", "size", "created_at", "meta")


@admin.register(InstalledVersion)
class InstalledVersionAdmin(RecordAdmin):
    list_display = ("version", "reason", "recorded_at", "deployment")
    list_filter = ("reason",)
    readonly_fields = ("version", "reason", "recorded_at", "deployment")
