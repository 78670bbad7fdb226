"""Pre-checks of a deployment. Each returns a StepOutcome; a failed one stops the deployment.

Which `check --deploy` findings block: every Error (Django will not serve correctly with them)
and the warnings listed in DEPLOYMENTS["BLOCKING_CHECKS"], by default only security.W018
(DEBUG on), because that shows tracebacks and settings to any visitor. The other deploy warnings
(HSTS, SSL redirect, secure cookies, the fallback SECRET_KEY) depend on how TLS is terminated in
front of the app, which the app cannot see. The embedded default also serves plain HTTP on
loopback. So they are reported as warnings and never stop a deployment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core import checks as django_checks
from django.db import DatabaseError, connection
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState

from merger.models import MergeRun

from . import backups, database
from .models import Deployment
from .steps import FAILED, OK, SKIPPED, WARNING, StepOutcome

MIB = 1024 * 1024


def system_checks() -> StepOutcome:
    """Run Django's system checks with the deployment checks, like `manage.py check --deploy`."""
    messages = [
        message
        for message in django_checks.run_checks(include_deployment_checks=True)
        if not message.is_silenced()
    ]
    blocking_ids = set(settings.DEPLOYMENTS["BLOCKING_CHECKS"])
    blocking = [m for m in messages if m.level >= django_checks.ERROR or m.id in blocking_ids]
    warnings = [m for m in messages if m not in blocking and m.level >= django_checks.WARNING]
    lines = [f"blocking {_describe(m)}" for m in blocking] + [_describe(m) for m in warnings]
    if blocking:
        return StepOutcome(FAILED, "\n".join(lines), {"blocking": [m.id for m in blocking]})
    if warnings:
        return StepOutcome(WARNING, "\n".join(lines), {"warnings": [m.id for m in warnings]})
    return StepOutcome(OK, "no issues")


def _describe(message: django_checks.CheckMessage) -> str:
    hint = f" Hint: {message.hint}" if message.hint else ""
    return f"{message.id}: {message.msg}{hint}"


def pending_migrations() -> list[str]:
    """Return the unapplied migrations as "app.name", in the order migrate would apply them."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def migration_plan() -> StepOutcome:
    """List the pending migrations; fail on conflicting leaf migrations, warn on unmigrated model changes."""
    executor = MigrationExecutor(connection)
    conflicts = executor.loader.detect_conflicts()
    if conflicts:
        described = "; ".join(f"{app}: {', '.join(names)}" for app, names in sorted(conflicts.items()))
        return StepOutcome(
            FAILED,
            f"conflicting migrations ({described}): run `manage.py makemigrations --merge` and deploy again",
        )
    pending = pending_migrations()
    lines = [f"{len(pending)} pending migration(s)"] + [f"  {name}" for name in pending]

    # Models changed without a migration would make the new code query columns that migrate
    # never creates.
    autodetector = MigrationAutodetector(executor.loader.project_state(), ProjectState.from_apps(apps))
    changes = autodetector.changes(graph=executor.loader.graph)
    if changes:
        lines.append(
            f"models of {', '.join(sorted(changes))} have changes without migrations: run makemigrations"
        )
        return StepOutcome(WARNING, "\n".join(lines), {"pending": pending})
    return StepOutcome(OK, "\n".join(lines), {"pending": pending})


def database_reachable() -> StepOutcome:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        size = database.database_size()
    except DatabaseError as error:
        return StepOutcome(FAILED, f"cannot reach the {connection.vendor} database: {error}")
    return StepOutcome(OK, f"{connection.vendor} database reachable, {size / MIB:.1f} MiB", {"size": size})


def backup_tools() -> StepOutcome:
    """Check that the database can be backed up: pg_dump, pg_restore and psql of the server's version."""
    if connection.vendor == "sqlite":
        return StepOutcome(OK, "SQLite: the online backup API of Python's sqlite3 module needs no tool")
    if connection.vendor != "postgresql":
        return StepOutcome(FAILED, f"database engine {connection.vendor!r} has no backup support")
    try:
        server_major = connection.pg_version // 10000
        versions = {name: database.pg_tool_major(name) for name in ("pg_dump", "pg_restore", "psql")}
    except (database.DatabaseBackupError, DatabaseError) as error:
        return StepOutcome(FAILED, str(error))
    text = ", ".join(f"{name} {major}" for name, major in versions.items())
    if versions["pg_dump"] != server_major:
        return StepOutcome(
            FAILED,
            f"{text}; the server is PostgreSQL {server_major}: install postgresql-client-{server_major} "
            "and point DEPLOY_PG_BIN_DIR at its bin folder",
        )
    return StepOutcome(OK, f"{text}; the server is PostgreSQL {server_major}")


def estimated_backup_size() -> int:
    """Return the bytes a backup set needs: the database's size plus the current exports, uncompressed."""
    size = database.database_size()
    exports = backups.latest_exports()
    if exports is not None:
        size += backups.folder_size(exports.path)
    return size


def disk_space() -> StepOutcome:
    """Fail when the backup folder's file system lacks MIN_FREE_DISK_MB plus the backup's size."""
    folder = Path(settings.DEPLOYMENTS["BACKUP_DIR"])
    # The folder may not exist before the first backup, and a dry run must not create it. Its
    # nearest existing parent is on the same file system.
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    reserve = settings.DEPLOYMENTS["MIN_FREE_DISK_MB"] * MIB
    needed = reserve + estimated_backup_size()
    text = f"{free / MIB:.0f} MiB free at {probe}; {needed / MIB:.0f} MiB needed (reserve plus backup)"
    if free < needed:
        return StepOutcome(
            FAILED, f"{text}: free space or lower DEPLOY_MIN_FREE_DISK_MB", {"free": free, "needed": needed}
        )
    return StepOutcome(OK, text, {"free": free, "needed": needed})


def health() -> StepOutcome:
    """Fail when the health checks of the monitoring app report anything critical."""
    try:
        from monitoring import checks as health_checks
    except ImportError:
        return StepOutcome(SKIPPED, "the monitoring app has no health checks installed")
    results = health_checks.run_checks()
    overall = health_checks.overall_status(results)
    lines = [f"overall: {overall}"] + [
        f"  {result.name}: {result.status} ({result.message})" for result in results
    ]
    status = {"critical": FAILED, "warning": WARNING}.get(overall, OK)
    return StepOutcome(status, "\n".join(lines), {"overall": overall})


def no_merge_running() -> StepOutcome:
    running = list(MergeRun.objects.filter(status=MergeRun.Status.RUNNING).values_list("pk", flat=True))
    if running:
        ids = ", ".join(f"#{pk}" for pk in running)
        return StepOutcome(
            FAILED,
            f"merge run(s) {ids} still running: wait for them to finish or cancel them, then deploy again",
        )
    return StepOutcome(OK, "no merge running")


def no_other_deployment(current: Deployment) -> StepOutcome:
    others = list(
        Deployment.objects.filter(status=Deployment.Status.RUNNING)
        .exclude(pk=current.pk)
        .values_list("pk", flat=True)
    )
    if others:
        ids = ", ".join(f"#{pk}" for pk in others)
        return StepOutcome(
            FAILED,
            f"deployment(s) {ids} still running: wait for them, or if their process has stopped, select them "
            "in the admin under Deployments and run the action that marks them failed",
        )
    return StepOutcome(OK, "no other deployment running")
