"""Health snapshots, thresholds, alerts, notification deliveries, recovery attempts and breakers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    """Outcome of one health check; `overall_status` ranks them ok < warning < critical."""

    OK = "ok", _("ok")
    WARNING = "warning", _("warning")
    CRITICAL = "critical", _("critical")
    SKIPPED = "skipped", _("skipped")


class HealthSnapshot(models.Model):
    """The results of every health check at one moment, stored on a schedule."""

    taken_at = models.DateTimeField(_("taken at"), default=timezone.now, db_index=True)
    status = models.CharField(_("overall status"), max_length=10, choices=Status.choices)
    duration_ms = models.FloatField(_("duration (ms)"), default=0.0)

    class Meta:
        ordering = ["-taken_at"]
        get_latest_by = "taken_at"
        verbose_name = _("health snapshot")
        verbose_name_plural = _("health snapshots")

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M:%S} {self.status}"


class CheckSample(models.Model):
    """One check's status and measured value inside a snapshot; the trend series read these rows."""

    snapshot = models.ForeignKey(HealthSnapshot, on_delete=models.CASCADE, related_name="samples")
    # Denormalised from the snapshot so that a trend series is one indexed query without a join.
    taken_at = models.DateTimeField(db_index=True)
    name = models.CharField(_("check"), max_length=60)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    value = models.FloatField(_("value"), null=True, blank=True)
    message = models.CharField(_("message"), max_length=500, blank=True)

    class Meta:
        ordering = ["snapshot", "name"]
        indexes = [models.Index(fields=["name", "taken_at"])]
        verbose_name = _("check sample")
        verbose_name_plural = _("check samples")

    def __str__(self) -> str:
        return f"{self.name}={self.value} ({self.status})"


class Threshold(models.Model):
    """Warning and critical limits of one check, overriding the defaults its code registers."""

    class Direction(models.TextChoices):
        ABOVE = "above", _("alert when the value rises to the limit or above")
        BELOW = "below", _("alert when the value falls to the limit or below")

    check_name = models.CharField(
        _("check"),
        max_length=60,
        unique=True,
        help_text=_("Name of a registered check, e.g. disk or merge_freshness."),
    )
    warning = models.FloatField(
        _("warning at"), null=True, blank=True, help_text=_("Empty disables the warning level.")
    )
    critical = models.FloatField(
        _("critical at"), null=True, blank=True, help_text=_("Empty disables the critical level.")
    )
    direction = models.CharField(
        _("direction"), max_length=5, choices=Direction.choices, default=Direction.ABOVE
    )
    alerts_enabled = models.BooleanField(
        _("open alerts"), default=True, help_text=_("Off: the status is still computed, but no alert opens.")
    )
    warning_severity = models.CharField(
        _("severity of a warning-level alert"),
        max_length=10,
        default="warning",
        choices=[("info", _("info")), ("warning", _("warning"))],
        help_text=_("Info alerts are listed but not sent unless notifications include info."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["check_name"]
        verbose_name = _("threshold")
        verbose_name_plural = _("thresholds")

    def __str__(self) -> str:
        return self.check_name


class Alert(models.Model):
    """A condition that crossed a threshold: open while it lasts, resolved when it clears.

    At most one unresolved alert exists per key (a database constraint), so a condition that lasts
    updates its alert instead of opening another.
    """

    class Severity(models.TextChoices):
        INFO = "info", _("info")
        WARNING = "warning", _("warning")
        CRITICAL = "critical", _("critical")

    key = models.CharField(
        _("key"), max_length=120, help_text=_("check:NAME for checks, breaker:source:ID for breakers.")
    )
    check_name = models.CharField(_("check"), max_length=60, blank=True)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    title = models.CharField(_("title"), max_length=200)
    message = models.CharField(_("message"), max_length=500, blank=True)
    value = models.FloatField(_("last value"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("last seen"), default=timezone.now)
    occurrences = models.PositiveIntegerField(_("times seen"), default=1)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(resolved_at__isnull=True), name="one_open_alert_per_key"
            )
        ]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")

    def __str__(self) -> str:
        return f"{self.severity}: {self.title}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class NotificationDelivery(models.Model):
    """One notification about an alert change sent (or held back) on one channel."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("e-mail")
        WEBHOOK = "webhook", _("webhook")

    class Outcome(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        RATE_LIMITED = "rate_limited", _("rate limited")

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("event"), max_length=20, help_text=_("opened, escalated or resolved"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    target = models.CharField(_("target"), max_length=500, help_text=_("Recipients or the webhook URL."))
    outcome = models.CharField(_("outcome"), max_length=15, choices=Outcome.choices, default=Outcome.PENDING)
    status_code = models.PositiveIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")

    def __str__(self) -> str:
        return f"{self.channel} {self.event} alert {self.alert_id}: {self.outcome}"


class RecoveryAttempt(models.Model):
    """One run of an automated recovery action and what came of it."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped")
        NOTHING_TO_DO = "nothing", _("nothing to do")
        DRY_RUN = "dry_run", _("dry run")

    action = models.CharField(_("action"), max_length=60, db_index=True)
    check_name = models.CharField(_("triggered by check"), max_length=60, blank=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    detail = models.TextField(_("detail"), blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("recovery attempt")
        verbose_name_plural = _("recovery attempts")

    def __str__(self) -> str:
        return f"{self.action}: {self.outcome}"


class SourceBreaker(models.Model):
    """Circuit-breaker state of one source: which sources monitoring disabled, and until when.

    Only sources that the breaker disabled are re-enabled by it, so a source an operator turned off
    stays off.
    """

    class State(models.TextChoices):
        OPEN = "open", _("open (source disabled)")
        HALF_OPEN = "half_open", _("half open (re-enabled on trial)")
        CLOSED = "closed", _("closed")

    source = models.OneToOneField("merger.Source", on_delete=models.CASCADE, related_name="breaker")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.CLOSED)
    opened_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    retry_at = models.DateTimeField(_("re-enable at"), null=True, blank=True)
    # consecutive_failures when the source was re-enabled; one more failure in the trial trips it again.
    failures_baseline = models.PositiveIntegerField(default=0)
    trips = models.PositiveIntegerField(_("times tripped"), default=0)

    class Meta:
        ordering = ["source"]
        verbose_name = _("source breaker")
        verbose_name_plural = _("source breakers")

    def __str__(self) -> str:
        return f"{self.source} {self.state}"
