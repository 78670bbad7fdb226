"""Deployments with their steps, the backups taken before them, and the installed-version history."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Deployment(models.Model):
    """One deployment, dry run or manual rollback, with every step's status, timing and output.

    `steps` is a list of dicts (phase, name, status, started_at, finished_at, duration_ms, output)
    rather than a table, because a database restore replaces these rows and the service writes
    the record back from its copy in memory.
    """

    class Kind(models.TextChoices):
        DEPLOY = "deploy", _("deployment")
        ROLLBACK = "rollback", _("manual rollback")

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        ROLLED_BACK = "rolled_back", _("failed and rolled back")
        ROLLBACK_FAILED = "rollback_failed", _("failed, and the rollback failed too")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.DEPLOY)
    version = models.CharField(_("version"), max_length=100)
    previous_version = models.CharField(
        _("previous version"), max_length=100, blank=True, help_text=_("The current version when it started.")
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    dry_run = models.BooleanField(_("dry run"), default=False)
    started_by = models.CharField(
        _("started by"),
        max_length=200,
        blank=True,
        help_text=_("User name, and the entry point it came through."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    steps = models.JSONField(_("steps"), default=list, blank=True)
    plan = models.JSONField(
        _("plan"), default=list, blank=True, help_text=_("What the deployment changes, in order.")
    )
    backup = models.ForeignKey(
        "Backup",
        verbose_name=_("database backup"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The database backup that a rollback of this deployment restores."),
    )
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("deployment")
        verbose_name_plural = _("deployments")

    def __str__(self) -> str:
        label = _("dry run") if self.dry_run else self.get_kind_display()
        return f"#{self.pk} {label} {self.version} ({self.status})"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None while it has not finished."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Backup(models.Model):
    """One file of a deployment's backup set, with its SHA-256 checksum and size in bytes."""

    class Kind(models.TextChoices):
        DATABASE = "database", _("database")
        SETTINGS = "settings", _("settings")
        PROFILES = "profiles", _("sources and output profiles")
        EXPORTS = "exports", _("current exports")

    deployment = models.ForeignKey(
        Deployment,
        verbose_name=_("deployment"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backups",
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    path = models.CharField(_("path"), max_length=1000)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    meta = models.JSONField(
        _("details"),
        default=dict,
        blank=True,
        help_text=_("Database engine and name, tool versions, the run exported."),
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("backup")
        verbose_name_plural = _("backups")

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} of deployment {self.deployment_id}"


class InstalledVersion(models.Model):
    """An entry in the history of installed versions; the newest entry is the current version."""

    class Reason(models.TextChoices):
        DEPLOY = "deploy", _("deployed")
        ROLLBACK = "rollback", _("rolled back to")

    version = models.CharField(
        _("version"), max_length=100, blank=True, help_text=_("Empty means none recorded.")
    )
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)
    deployment = models.ForeignKey(
        Deployment,
        verbose_name=_("deployment"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-recorded_at", "-pk"]
        verbose_name = _("installed version")
        verbose_name_plural = _("installed versions")

    def __str__(self) -> str:
        return f"{self.version or '-'} ({self.reason})"
