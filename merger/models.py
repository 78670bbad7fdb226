"""Sources, merge runs with their per-source results, and the de-duplicated nodes."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Source(models.Model):
    """A subscription URL (or local file) that every merge fetches while it is enabled."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    url = models.CharField(
        _("URL"), max_length=2000, help_text=_("An http(s):// URL, a file:// URL or a path on this machine.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    user_agent = models.CharField(
        _("User-Agent"),
        max_length=300,
        blank=True,
        help_text=_("Sent instead of the default; some providers only answer known clients such as clash.meta."),
    )
    headers = models.JSONField(_("extra headers"), default=dict, blank=True)
    notes = models.TextField(_("notes"), blank=True)

    # Conditional GET state and the provider's traffic quota from the last successful fetch.
    etag = models.CharField(max_length=500, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    userinfo = models.JSONField(_("subscription-userinfo"), null=True, blank=True, editable=False)

    last_fetched_at = models.DateTimeField(_("last fetched"), null=True, blank=True, editable=False)
    last_ok_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_error = models.CharField(_("last error"), max_length=500, blank=True, editable=False)
    last_node_count = models.PositiveIntegerField(_("nodes at last fetch"), default=0, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")

    def __str__(self) -> str:
        return self.name


class MergeRun(models.Model):
    """One merge: which inputs it read, what it counted, and where its exports are."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    trigger = models.CharField(
        max_length=40, default="command", help_text=_("What started the run: command, schedule, web or api.")
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    stage = models.CharField(max_length=40, blank=True)
    progress = models.FloatField(default=0.0, help_text=_("0 to 100"))

    sources_ok = models.PositiveIntegerField(default=0)
    sources_failed = models.PositiveIntegerField(default=0)
    links_seen = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    unique = models.PositiveIntegerField(default=0)
    per_protocol = models.JSONField(default=dict, blank=True)
    invalid_reasons = models.JSONField(default=dict, blank=True)
    export_skipped = models.JSONField(
        default=dict, blank=True, help_text=_("Per export format, the nodes left out and why.")
    )
    export_dir = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("merge run")
        verbose_name_plural = _("merge runs")

    def __str__(self) -> str:
        return f"#{self.pk} {self.status}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None while the run has not finished."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class SourceResult(models.Model):
    """What one input gave in one run: fetch outcome, detected format and counts."""

    run = models.ForeignKey(MergeRun, on_delete=models.CASCADE, related_name="source_results")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    label = models.CharField(max_length=300, help_text=_("The source name, or the path or URL given to --from."))
    url = models.CharField(max_length=2000)
    ok = models.BooleanField(default=False)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    not_modified = models.BooleanField(default=False)
    error = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=40, blank=True)
    entries = models.PositiveIntegerField(default=0)
    nodes = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    invalid_reasons = models.JSONField(default=dict, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    elapsed_ms = models.FloatField(default=0.0)
    userinfo = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["run", "label"]
        verbose_name = _("source result")
        verbose_name_plural = _("source results")

    def __str__(self) -> str:
        return f"{self.label} in run {self.run_id}"


class Node(models.Model):
    """A unique proxy server, identified by the fingerprint of its connection settings."""

    fingerprint = models.CharField(max_length=32, unique=True)
    protocol = models.CharField(max_length=20, db_index=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    name = models.CharField(max_length=500, blank=True)
    link = models.TextField(help_text=_("Canonical share link."))
    data = models.JSONField(default=dict, help_text=_("Every field of the parsed node."))
    origins = models.JSONField(default=list, blank=True, help_text=_("Labels of the inputs it came from."))
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    last_run = models.ForeignKey(MergeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["protocol", "host", "port"]
        verbose_name = _("node")
        verbose_name_plural = _("nodes")

    def __str__(self) -> str:
        return self.name or f"{self.protocol} {self.host}:{self.port}"
