"""Keep the deployments app's own rows across a database restore.

A restore puts every table back as it was at backup time, including the Deployment, Backup and
InstalledVersion tables. That would erase the record of the deployment being rolled back, the
Backup rows written after the database snapshot, and every deployment since an older backup.
So the rows are copied into memory just before the restore and written back right after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction

from .models import Backup, Deployment, InstalledVersion

logger = logging.getLogger(__name__)

MODELS = (Deployment, Backup, InstalledVersion)


@dataclass(slots=True)
class Records:
    """In-memory copies of the deployments app's rows."""

    deployments: list[Deployment] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    versions: list[InstalledVersion] = field(default_factory=list)


def capture(current: Deployment, current_backups: list[Backup]) -> Records:
    """Copy every row of the deployments app; `current` and its backups are taken from memory.

    If the tables cannot be read (a failed migration of this app left them unusable), only the
    current deployment and its backups are kept, because those matter most for the rollback.
    """
    own_backup_ids = [backup.pk for backup in current_backups]
    try:
        records = Records(
            deployments=list(Deployment.objects.exclude(pk=current.pk)),
            backups=list(Backup.objects.exclude(pk__in=own_backup_ids)),
            versions=list(InstalledVersion.objects.all()),
        )
    except DatabaseError:
        logger.exception(
            "could not read the deployment records before the restore; keeping deployment %s only", current.pk
        )
        records = Records()
    records.deployments.append(current)
    records.backups.extend(current_backups)
    return records


def reinstate(records: Records) -> None:
    """Replace the deployments app's rows with the copies taken by `capture`, keeping primary keys.

    NOTE: this assumes the restored tables have the columns of the current models. That is true
    unless the rolled-back deployment changed this app's own schema.
    """
    with transaction.atomic():
        # Django declares its foreign keys deferred on SQLite and PostgreSQL, so they are checked
        # at commit and the circular Deployment-Backup references may be inserted in any order.
        InstalledVersion.objects.all().delete()
        Backup.objects.all().delete()
        Deployment.objects.all().delete()
        Deployment.objects.bulk_create(records.deployments)
        Backup.objects.bulk_create(records.backups)
        InstalledVersion.objects.bulk_create(records.versions)
        # PostgreSQL's sequences were restored to their old values too; they must continue past
        # the re-inserted keys. SQLite tracks AUTOINCREMENT itself.
        statements = connection.ops.sequence_reset_sql(no_style(), list(MODELS))
        if statements:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
