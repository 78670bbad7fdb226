"""Deployments and rollbacks: the one entry for the `deploy` and `rollback` commands and the web UI.

A deployment runs five phases: pre-checks, backup, apply (migrate, collect static files, record
the version, reload workers), verify (health, a merge of the samples) and monitoring (beat
schedules). A failed pre-check stops it before anything changes. A failure after the backup
restores the database from it and records the previous version as current again.

NOTE: a rollback restores the database and the version record, not the code. The operator puts
the old code back (or fixes the new one) before serving again.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from . import actions, backups, checks, database, records
from .models import Backup, Deployment, InstalledVersion
from .steps import OK, SKIPPED, StepListener, StepOutcome, StepRunner

logger = logging.getLogger(__name__)

# Step names per phase, in order; the progress events count against this total.
PRECHECKS = (
    "system_checks",
    "migration_plan",
    "database",
    "backup_tools",
    "disk_space",
    "health",
    "no_merge_running",
    "no_other_deployment",
)
APPLY = ("migrate", "collect_static", "record_version", "reload_workers")
VERIFY = ("health", "sample_merge")
MONITORING = ("schedules",)
TOTAL_STEPS = len(PRECHECKS) + 1 + len(APPLY) + len(VERIFY) + len(MONITORING)


class DeploymentError(Exception):
    """A deployment or rollback cannot start; the message gives the reason and the fix."""


def default_started_by(entry_point: str) -> str:
    """Return "<OS user> (<entry point>)" for deployments started outside the web UI."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user} ({entry_point})"


def create_deployment(version: str, *, dry_run: bool = False, started_by: str = "") -> Deployment:
    """Create a pending deployment (or dry run) of `version`; run it with `run_deployment(id)`."""
    version = version.strip()
    if not version:
        raise DeploymentError("the version is empty: pass a version label such as 1.4.0 or a commit id")
    if len(version) > 100:
        raise DeploymentError(
            f"the version {version[:20]!r}... is {len(version)} characters long: the maximum is 100"
        )
    return Deployment.objects.create(
        version=version,
        dry_run=dry_run,
        started_by=started_by[:200],
        previous_version=actions.current_version(),
    )


def start_deployment(
    version: str, *, dry_run: bool = False, started_by: str = "", listener: StepListener | None = None
) -> Deployment:
    """Create and run a deployment (or dry run) in this process; return the finished record."""
    deployment = create_deployment(version, dry_run=dry_run, started_by=started_by)
    return run_deployment(deployment.pk, listener=listener)


def run_deployment(deployment_id: int, *, listener: StepListener | None = None) -> Deployment:
    """Run a pending deployment to the end and return it; the outcome is in its status and steps.

    Only a pending deployment runs: the status changes to running with an UPDATE that must
    touch its row, so the same deployment started twice runs once. It must be called outside
    a transaction, because the backup, restore and migrate need their own.
    """
    dry_run = Deployment.objects.filter(pk=deployment_id).values_list("dry_run", flat=True).first()
    if dry_run is False and transaction.get_connection().in_atomic_block:
        raise DeploymentError(
            "a deployment cannot run inside a transaction: call run_deployment outside atomic()"
        )
    claimed = Deployment.objects.filter(pk=deployment_id, status=Deployment.Status.PENDING).update(
        status=Deployment.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        raise DeploymentError(f"deployment {deployment_id} is not pending: start a new deployment instead")
    deployment = Deployment.objects.get(pk=deployment_id)
    logger.info(
        "deployment %s of version %s started (dry run: %s)",
        deployment.pk,
        deployment.version,
        deployment.dry_run,
    )
    runner = StepRunner(
        deployment, listener, total_steps=len(PRECHECKS) if deployment.dry_run else TOTAL_STEPS
    )
    runner.publish()

    passed = _run_prechecks(runner)
    if deployment.dry_run:
        _finish_dry_run(runner, passed)
        return deployment
    if not passed:
        _finish(runner, Deployment.Status.FAILED, "a pre-check failed; nothing was changed")
        return deployment

    created: list[Backup] = []

    def take_backup() -> StepOutcome:
        created.extend(backups.create_backup_set(deployment))
        deployment.backup = next(backup for backup in created if backup.kind == Backup.Kind.DATABASE)
        lines = [
            f"{backup.kind}: {backup.path} ({backup.size} bytes, sha256 {backup.sha256})"
            for backup in created
        ]
        if not any(backup.kind == Backup.Kind.EXPORTS for backup in created):
            lines.append("exports: no succeeded merge run has an export folder yet")
        return StepOutcome(OK, "\n".join(lines))

    if runner.run("backup", "backup", take_backup).failed:
        _finish(runner, Deployment.Status.FAILED, "the backup failed; nothing was changed")
        return deployment

    phases: list[tuple[str, str, Callable[[], StepOutcome]]] = [
        ("apply", "migrate", actions.migrate),
        ("apply", "collect_static", actions.collect_static),
        ("apply", "record_version", lambda: actions.record_version(deployment)),
        ("apply", "reload_workers", actions.reload_workers),
        ("verify", "health", actions.verify_health),
        ("verify", "sample_merge", actions.verify_sample_merge),
        ("monitoring", "schedules", actions.schedules),
    ]
    for phase, name, action in phases:
        if runner.run(phase, name, action).failed:
            _roll_back(runner, created, f"step {phase}.{name} failed")
            return deployment

    _finish(runner, Deployment.Status.SUCCEEDED, "")
    _prune(runner)
    return deployment


def _run_prechecks(runner: StepRunner) -> bool:
    deployment = runner.deployment
    prechecks: list[tuple[str, Callable[[], StepOutcome]]] = [
        ("system_checks", checks.system_checks),
        ("migration_plan", checks.migration_plan),
        ("database", checks.database_reachable),
        ("backup_tools", checks.backup_tools),
        ("disk_space", checks.disk_space),
        ("health", checks.health),
        ("no_merge_running", checks.no_merge_running),
        ("no_other_deployment", lambda: checks.no_other_deployment(deployment)),
    ]
    # Every pre-check runs even after one fails, so that one attempt lists every problem.
    outcomes = [runner.run("precheck", name, check) for name, check in prechecks]
    return not any(outcome.failed for outcome in outcomes)


def _finish_dry_run(runner: StepRunner, passed: bool) -> None:
    deployment = runner.deployment
    try:
        deployment.plan = build_plan(deployment)
    except Exception as error:
        # The failed pre-check output already gives the reason, for example a database outage.
        logger.warning("deployment %s: could not build the plan", deployment.pk, exc_info=True)
        deployment.plan = [f"no plan: {type(error).__name__}: {error}"]
    if passed:
        _finish(runner, Deployment.Status.SUCCEEDED, "")
    else:
        _finish(runner, Deployment.Status.FAILED, "a pre-check failed; a deployment would stop there")


def build_plan(deployment: Deployment) -> list[str]:
    """Describe, in order, what a real deployment of the same version would change."""
    pending = checks.pending_migrations()
    exports = backups.latest_exports()
    plan = [
        f"back up the {database.vendor()} database (about {database.database_size() / checks.MIB:.1f} MiB) "
        f"into a new folder under {settings.DEPLOYMENTS['BACKUP_DIR']}",
        "back up the effective settings (secrets masked) and the sources and output profiles",
        f"back up the exports of merge run #{exports.run_id} ({exports.path})"
        if exports
        else "no exports to back up",
        f"apply {len(pending)} migration(s): {', '.join(pending)}"
        if pending
        else "apply no migrations (none pending)",
        f"collect static files into {settings.STATIC_ROOT}",
        f"record version {deployment.version} as current (now {deployment.previous_version or 'none'})",
        "reload the Celery workers (pool_restart broadcast)"
        if settings.CELERY_BROKER_URL
        else "skip the worker reload (no broker configured)",
        f"verify the health checks and a merge of {len(actions.sample_files())} sample files",
        "check the beat schedules"
        if settings.CELERY_BROKER_URL
        else "skip the beat schedules (no broker configured)",
        f"keep the backup sets of the {settings.DEPLOYMENTS['BACKUP_RETENTION']} newest deployments",
    ]
    return plan


def _roll_back(runner: StepRunner, created: list[Backup], reason: str) -> None:
    deployment = runner.deployment
    logger.warning("deployment %s: %s, rolling back", deployment.pk, reason)
    deployment.error = reason
    backup = deployment.backup
    assert backup is not None  # the backup step succeeded, so it set the database backup

    def restore() -> StepOutcome:
        return StepOutcome(OK, restore_with_records(deployment, backup, created))

    outcome = runner.run("rollback", "restore_database", restore)
    if outcome.failed:
        _finish(
            runner, Deployment.Status.ROLLBACK_FAILED, f"{reason}; the rollback failed too: restore by hand"
        )
        return
    runner.run("rollback", "record_version", lambda: _record_rollback_version(deployment))
    _finish(
        runner, Deployment.Status.ROLLED_BACK, f"{reason}; the database was restored from backup {backup.pk}"
    )


def restore_with_records(deployment: Deployment, backup: Backup, created: list[Backup]) -> str:
    """Restore the database from `backup` and write the deployments app's rows back afterwards."""
    backups.verify(backup)
    saved_records = records.capture(deployment, created)
    output = database.restore_database(Path(backup.path), backup.meta)
    # Cached content types may point at rows the restore removed or renumbered.
    ContentType.objects.clear_cache()
    records.reinstate(saved_records)
    return output


def _record_rollback_version(deployment: Deployment) -> StepOutcome:
    version = deployment.previous_version if deployment.kind == Deployment.Kind.DEPLOY else deployment.version
    InstalledVersion.objects.create(
        version=version, reason=InstalledVersion.Reason.ROLLBACK, deployment=deployment
    )
    return StepOutcome(OK, f"current version: {version or 'none recorded'}")


def _finish(runner: StepRunner, status: str, error: str) -> None:
    deployment = runner.deployment
    deployment.status = status
    deployment.error = error
    deployment.finished_at = timezone.now()
    runner.save()
    runner.publish()
    log = logger.info if status == Deployment.Status.SUCCEEDED else logger.warning
    log("deployment %s of version %s finished: %s %s", deployment.pk, deployment.version, status, error)


def _prune(runner: StepRunner) -> None:
    def prune() -> StepOutcome:
        deleted = backups.prune_backups(settings.DEPLOYMENTS["BACKUP_RETENTION"])
        if not deleted:
            return StepOutcome(SKIPPED, "no backup set beyond the retention count")
        return StepOutcome(OK, f"removed {len(deleted)} old backup files")

    # A failed clean-up leaves old files behind but does not undo a working deployment.
    runner.run("cleanup", "old_backups", prune)


def rollback(
    backup_id: int | None = None,
    *,
    started_by: str = "",
    with_exports: bool = False,
    listener: StepListener | None = None,
) -> Deployment:
    """Restore the database from a backup by hand and record the version before that backup as current.

    Without `backup_id` the database backup of the newest deployment is used. The rollback is
    recorded as a Deployment of kind "rollback".
    """
    backup = _pick_backup(backup_id)
    source = backup.deployment
    deployment = Deployment.objects.create(
        kind=Deployment.Kind.ROLLBACK,
        version=source.previous_version if source else "",
        previous_version=actions.current_version(),
        started_by=started_by[:200],
        status=Deployment.Status.RUNNING,
        started_at=timezone.now(),
        backup=backup,
    )
    logger.info("rollback %s from backup %s started", deployment.pk, backup.pk)
    runner = StepRunner(deployment, listener, total_steps=5 + int(with_exports))
    runner.publish()

    guards = [
        ("no_merge_running", checks.no_merge_running),
        ("no_other_deployment", lambda: checks.no_other_deployment(deployment)),
        ("verify_backup", lambda: _verify_outcome(backup)),
    ]
    if any([runner.run("precheck", name, guard).failed for name, guard in guards]):
        _finish(runner, Deployment.Status.FAILED, "a pre-check failed; nothing was changed")
        return deployment

    def restore() -> StepOutcome:
        return StepOutcome(OK, restore_with_records(deployment, backup, []))

    if runner.run("rollback", "restore_database", restore).failed:
        _finish(runner, Deployment.Status.FAILED, f"restoring backup {backup.pk} failed")
        return deployment
    runner.run("rollback", "record_version", lambda: _record_rollback_version(deployment))
    if with_exports:
        runner.run("rollback", "restore_exports", lambda: _restore_exports(source))
    _finish(runner, Deployment.Status.SUCCEEDED, "")
    return deployment


def _pick_backup(backup_id: int | None) -> Backup:
    if backup_id is None:
        # A rolled-back deployment's backup equals the current state, so the default is the
        # backup taken before the newest deployment that succeeded.
        backup = (
            Backup.objects.filter(
                kind=Backup.Kind.DATABASE,
                deployment__kind=Deployment.Kind.DEPLOY,
                deployment__status=Deployment.Status.SUCCEEDED,
            )
            .order_by("-created_at", "-pk")
            .first()
        )
        if backup is None:
            raise DeploymentError(
                "no succeeded deployment has a database backup: pass a backup id (listed in the admin)"
            )
        return backup
    backup = Backup.objects.filter(pk=backup_id).select_related("deployment").first()
    if backup is None:
        raise DeploymentError(
            f"backup {backup_id} not found: list the backups in the admin under Deployments"
        )
    if backup.kind != Backup.Kind.DATABASE:
        database_backup = Backup.objects.filter(
            deployment_id=backup.deployment_id, kind=Backup.Kind.DATABASE
        ).first()
        hint = (
            f"use {database_backup.pk}, the database backup of the same set"
            if database_backup
            else "pick another"
        )
        raise DeploymentError(f"backup {backup_id} is a {backup.kind} backup, not a database backup: {hint}")
    return backup


def _verify_outcome(backup: Backup) -> StepOutcome:
    backups.verify(backup)
    return StepOutcome(OK, f"{backup.path}: {backup.size} bytes, sha256 {backup.sha256} as recorded")


def _restore_exports(source: Deployment | None) -> StepOutcome:
    exports = Backup.objects.filter(deployment=source, kind=Backup.Kind.EXPORTS).first() if source else None
    if exports is None:
        return StepOutcome(SKIPPED, "the backup set has no exports")
    return StepOutcome(OK, backups.restore_exports(exports))


def abandon_deployment(deployment_id: int) -> bool:
    """Mark a running deployment whose process is gone as failed; return False if it was not running.

    A running deployment blocks every other one, so one killed half-way must be released by hand.
    """
    updated = Deployment.objects.filter(pk=deployment_id, status=Deployment.Status.RUNNING).update(
        status=Deployment.Status.FAILED,
        finished_at=timezone.now(),
        error="marked failed by hand: its process had stopped",
    )
    if updated:
        logger.warning("deployment %s marked failed by hand", deployment_id)
    return bool(updated)


def list_deployments(limit: int = 50) -> list[Deployment]:
    """Return the newest deployments, dry runs and rollbacks, newest first, with their database backup."""
    return list(Deployment.objects.select_related("backup").order_by("-created_at", "-pk")[:limit])


def deployment_detail(deployment_id: int) -> dict[str, Any]:
    """Return a deployment with its steps, plan and backup files as plain data.

    Raises Deployment.DoesNotExist for an unknown id.
    """
    deployment = Deployment.objects.get(pk=deployment_id)
    return {
        "id": deployment.pk,
        "kind": deployment.kind,
        "version": deployment.version,
        "previous_version": deployment.previous_version,
        "status": deployment.status,
        "dry_run": deployment.dry_run,
        "started_by": deployment.started_by,
        "created_at": deployment.created_at.isoformat(),
        "started_at": deployment.started_at.isoformat() if deployment.started_at else None,
        "finished_at": deployment.finished_at.isoformat() if deployment.finished_at else None,
        "duration": deployment.duration,
        "steps": deployment.steps,
        "plan": deployment.plan,
        "error": deployment.error,
        "backup_id": deployment.backup_id,
        "backups": [
            {
                "id": backup.pk,
                "kind": backup.kind,
                "path": backup.path,
                "sha256": backup.sha256,
                "size": backup.size,
            }
            for backup in deployment.backups.order_by("pk")
        ],
        "current_version": actions.current_version(),
    }


def current_version() -> str:
    """Return the installed version recorded last, or "" when none was recorded."""
    return actions.current_version()
