"""Backup sets: the database, the effective settings, sources and profiles, and the current exports.

Each file gets a Backup row with its SHA-256 checksum and size. A set lives in its own folder
under DEPLOYMENTS["BACKUP_DIR"]; the folder and files are private to the owner because the
database and the source and profile dump contain subscription URLs and profile tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db.models import Max
from django.utils import timezone
from django.views.debug import SafeExceptionReporterFilter

from merger.models import MergeRun

from . import database
from .models import Backup, Deployment

logger = logging.getLogger(__name__)

# user:password@ inside a URL string such as a broker or cache URL; the password part is replaced.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@", re.IGNORECASE
)
_REDACTED = "********"


class BackupFailed(Exception):
    """A backup file could not be written or does not match its recorded checksum."""


@dataclass(slots=True)
class ExportsSource:
    """The export folder of the latest succeeded merge run."""

    run_id: int
    path: Path


def set_folder(deployment: Deployment) -> Path:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    return Path(settings.DEPLOYMENTS["BACKUP_DIR"]) / f"deployment-{deployment.pk}-{stamp}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(backup: Backup) -> None:
    """Raise BackupFailed unless the backup's file exists and matches its recorded checksum and size."""
    path = Path(backup.path)
    if not path.is_file():
        raise BackupFailed(f"backup file {path} of backup {backup.pk} is missing: pick another backup")
    size = path.stat().st_size
    if size != backup.size or sha256_of(path) != backup.sha256:
        raise BackupFailed(
            f"backup file {path} of backup {backup.pk} does not match its recorded checksum: "
            "it was changed or is damaged, so pick another backup"
        )


def latest_exports() -> ExportsSource | None:
    """Return the export folder of the newest succeeded run that still has one, or None."""
    runs = MergeRun.objects.filter(status=MergeRun.Status.SUCCEEDED).exclude(export_dir="")
    for run_id, export_dir in runs.order_by("-finished_at", "-pk").values_list("pk", "export_dir")[:5]:
        if Path(export_dir).is_dir():
            return ExportsSource(run_id, Path(export_dir))
    return None


def folder_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def create_backup_set(deployment: Deployment) -> list[Backup]:
    """Write the database, settings, sources and profiles, and exports backups of a deployment.

    The database is copied first, so the other Backup rows are created after the snapshot and a
    restore of it removes them. The deployment service writes them back with records.reinstate.
    """
    folder = set_folder(deployment)
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    backups: list[Backup] = []
    try:
        path = folder / database.backup_file_name()
        meta = database.backup_database(path)
        backups.append(_record(deployment, Backup.Kind.DATABASE, path, meta))

        path = folder / "settings.json"
        path.write_text(
            json.dumps(effective_settings(), indent=2, sort_keys=True, default=str), encoding="utf-8"
        )
        backups.append(_record(deployment, Backup.Kind.SETTINGS, path, {}))

        path = folder / "profiles.json"
        call_command(
            "dumpdata", "merger.OutputProfile", "merger.Source", indent=2, output=str(path), verbosity=0
        )
        backups.append(
            _record(
                deployment, Backup.Kind.PROFILES, path, {"models": ["merger.OutputProfile", "merger.Source"]}
            )
        )

        exports = latest_exports()
        if exports is not None:
            path = folder / "exports.tar.gz"
            with tarfile.open(path, "w:gz") as archive:
                archive.add(exports.path, arcname=exports.path.name)
            backups.append(
                _record(
                    deployment,
                    Backup.Kind.EXPORTS,
                    path,
                    {"run_id": exports.run_id, "export_dir": str(exports.path)},
                )
            )
    except Exception:
        # A half-written set is useless for a rollback, so neither its files nor its rows stay.
        Backup.objects.filter(pk__in=[backup.pk for backup in backups]).delete()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return backups


def _record(deployment: Deployment, kind: str, path: Path, meta: dict[str, Any]) -> Backup:
    os.chmod(path, 0o600)
    return Backup.objects.create(
        deployment=deployment,
        kind=kind,
        path=str(path),
        sha256=sha256_of(path),
        size=path.stat().st_size,
        meta=meta,
    )


def effective_settings() -> dict[str, Any]:
    """Return every upper-case setting with secrets masked, as plain JSON-ready values.

    Django's exception-report filter masks names containing KEY, SECRET, PASS, TOKEN, API or
    SIGNATURE, also inside dicts such as DATABASES; passwords inside URL strings (broker, cache)
    are masked here as well.
    """
    safe = SafeExceptionReporterFilter().get_safe_settings()
    return {name: _scrub(value) for name, value in safe.items()}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item) for item in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda match: f"{match['prefix']}:{_REDACTED}@", value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _URL_PASSWORD.sub(lambda match: f"{match['prefix']}:{_REDACTED}@", str(value))


def restore_exports(backup: Backup) -> str:
    """Unpack an exports backup into its original place unless that folder still exists."""
    verify(backup)
    target = Path(backup.meta["export_dir"])
    if target.exists():
        return f"{target} still exists; the exports backup was not unpacked"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(backup.path, "r:gz") as archive:
        # The "data" filter rejects absolute paths, links out of the folder and device files.
        archive.extractall(target.parent, filter="data")
    return f"unpacked {backup.path} into {target}"


def prune_backups(keep: int) -> list[str]:
    """Delete the files and rows of backup sets beyond the `keep` newest; return the deleted paths."""
    keep = max(keep, 1)
    newest = (
        Backup.objects.values("deployment_id")
        .annotate(newest=Max("created_at"))
        .order_by("-newest", "-deployment_id")
    )
    old_sets = [row["deployment_id"] for row in newest[keep:]]
    backup_dir = Path(settings.DEPLOYMENTS["BACKUP_DIR"]).resolve()
    deleted: list[str] = []
    for deployment_id in old_sets:
        backups = list(Backup.objects.filter(deployment_id=deployment_id))
        folders = set()
        for backup in backups:
            path = Path(backup.path)
            path.unlink(missing_ok=True)
            deleted.append(str(path))
            folders.add(path.parent.resolve())
        # A set's folder goes with its files, including any SQLite -wal or -shm file left by
        # opening the copy. Only folders that create_backup_set made are removed.
        for folder in folders:
            if folder.parent == backup_dir and folder.name.startswith("deployment-"):
                shutil.rmtree(folder, ignore_errors=True)
        Backup.objects.filter(pk__in=[backup.pk for backup in backups]).delete()
    if deleted:
        logger.info("removed %d old backup files of %d deployments", len(deleted), len(old_sets))
    return deleted
