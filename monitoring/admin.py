"""Admin for every monitoring model. Thresholds are edited here; the rest is mostly read-only history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from monitoring.alerts import acknowledge_alert
from monitoring.checks import registered_checks
from monitoring.models import (
    Alert,
    CheckSample,
    HealthSnapshot,
    NotificationDelivery,
    RecoveryAttempt,
    SourceBreaker,
    Threshold,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by monitoring itself: viewable and deletable, never hand-edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class CheckSampleInline(admin.TabularInline):
    model = CheckSample
    extra = 0
    can_delete = False
    fields = ["name", "status", "value", "message"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["taken_at", "status", "duration_ms"]
    list_filter = ["status"]
    date_hierarchy = "taken_at"
    inlines = [CheckSampleInline]


@admin.register(CheckSample)
class CheckSampleAdmin(ReadOnlyAdmin):
    list_display = ["taken_at", "name", "status", "value", "message"]
    list_filter = ["name", "status"]
    date_hierarchy = "taken_at"


@admin.register(Threshold)
class ThresholdAdmin(admin.ModelAdmin):
    list_display = [
        "check_name",
        "warning",
        "critical",
        "direction",
        "alerts_enabled",
        "warning_severity",
        "updated_at",
    ]
    list_editable = ["warning", "critical", "alerts_enabled"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        # Listing the registered checks and their defaults in the help text saves a trip to the code.
        defaults = ", ".join(
            f"{spec.name} ({spec.limits.warning}/{spec.limits.critical} {spec.unit})"
            for spec in registered_checks().values()
        )
        form.base_fields["check_name"].help_text = _(
            "Registered checks with default warning/critical: %(list)s"
        ) % {"list": defaults}
        return form


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "severity",
        "opened_at",
        "updated_at",
        "occurrences",
        "resolved_at",
        "acknowledged_by",
    ]
    list_filter = ["severity", ("resolved_at", admin.EmptyFieldListFilter), "check_name"]
    search_fields = ["title", "key", "message"]
    readonly_fields = [field.name for field in Alert._meta.fields]
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Acknowledge the selected alerts"))
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        for alert_id in queryset.values_list("pk", flat=True):
            acknowledge_alert(alert_id, request.user)
        self.message_user(
            request, _("Acknowledged %(count)d alerts.") % {"count": queryset.count()}, messages.SUCCESS
        )


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "channel", "event", "alert", "outcome", "status_code", "error"]
    list_filter = ["channel", "outcome", "event"]
    list_select_related = ["alert"]


@admin.register(RecoveryAttempt)
class RecoveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "check_name", "outcome", "detail"]
    list_filter = ["action", "outcome"]


@admin.register(SourceBreaker)
class SourceBreakerAdmin(admin.ModelAdmin):
    list_display = ["source", "state", "opened_at", "retry_at", "trips"]
    list_filter = ["state"]
    readonly_fields = ["source", "opened_at", "failures_baseline", "trips"]
