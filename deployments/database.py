"""Back up and restore the whole database: SQLite through its online backup API, PostgreSQL with pg_dump.

Both restores are all-or-nothing. SQLite's backup API copies every page into the live connection
in one step, so the restored file contains exactly the backup (tables created since then
disappear). On PostgreSQL the restore is one psql transaction that first drops every table of
the schema and then replays the archive, so a failure leaves the database as it was.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# Seconds a restore waits for table locks held by other sessions (web server, workers) before it
# gives up and leaves the database untouched.
PG_LOCK_TIMEOUT_MS = 30_000
PG_COMMAND_TIMEOUT = 3600

# Run before the archive in the restore transaction: tables created after the backup (for
# example by a migration that ran before the failing one) are not in the archive, so
# `pg_restore --clean` alone would leave them behind.
_DROP_ALL_TABLES = """
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.tablename);
    END LOOP;
END
$$;
"""


class DatabaseBackupError(Exception):
    """A backup or restore could not be made; the message names the cause and the fix."""


def vendor(alias: str = "default") -> str:
    return connections[alias].vendor


def database_size(alias: str = "default") -> int:
    """Return the database's size in bytes, as an estimate of the backup's size."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return int(pages * cursor.fetchone()[0])
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    return 0


def backup_file_name(alias: str = "default") -> str:
    return "database.sqlite3" if vendor(alias) == "sqlite" else "database.dump"


def backup_database(path: Path, alias: str = "default") -> dict[str, Any]:
    """Write a consistent copy of the database to `path` and return details for Backup.meta."""
    connection = connections[alias]
    if connection.vendor == "sqlite":
        return _sqlite_backup(path, alias)
    if connection.vendor == "postgresql":
        return pg_backup(connection.settings_dict, path, connection.pg_version // 10000)
    raise DatabaseBackupError(
        f"database engine {connection.vendor!r} has no backup support: use SQLite or PostgreSQL"
    )


def restore_database(path: Path, meta: dict[str, Any], alias: str = "default") -> str:
    """Replace the database's content with the backup at `path`; return the tool output.

    Must run outside any transaction. Django's connection is closed before a PostgreSQL restore,
    so that it holds no locks, and reopens on the next query.
    """
    connection = connections[alias]
    engine = meta.get("engine")
    if engine != connection.vendor:
        raise DatabaseBackupError(
            f"backup {path} is a {engine} backup but the database is {connection.vendor}: "
            "restore it into a database of the same engine"
        )
    if connection.in_atomic_block:
        raise DatabaseBackupError(
            "a database restore cannot run inside a transaction: call it outside atomic()"
        )
    if connection.vendor == "sqlite":
        return _sqlite_restore(path, alias)
    connection.close()
    return pg_restore(connection.settings_dict, path)


def _sqlite_backup(path: Path, alias: str) -> dict[str, Any]:
    connection = connections[alias]
    connection.ensure_connection()
    target = sqlite3.connect(path)
    try:
        # The backup API reads a consistent snapshot even while other connections write.
        connection.connection.backup(target)
        # The copy inherits WAL mode from a live database, and opening a WAL file leaves -wal and
        # -shm files beside it; a self-contained file is easier to checksum, move and delete.
        target.execute("PRAGMA journal_mode=DELETE")
        integrity = target.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        target.close()
    if integrity != "ok":
        raise DatabaseBackupError(f"the SQLite backup {path} failed its integrity check: {integrity}")
    return {
        "engine": "sqlite",
        "name": str(connection.settings_dict["NAME"]),
        "sqlite_version": sqlite3.sqlite_version,
    }


def _sqlite_restore(path: Path, alias: str) -> str:
    connection = connections[alias]
    connection.ensure_connection()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        # Writing through Django's own sqlite3 handle works for a database file and for the
        # shared in-memory database that the test runner uses, and other connections see the
        # new content at their next read.
        source.backup(connection.connection)
    finally:
        source.close()
    return f"restored {path} into the SQLite database {connection.settings_dict['NAME']}"


def pg_tool(name: str) -> str:
    """Return the path of a PostgreSQL client program, from DEPLOYMENTS["PG_BIN_DIR"] or PATH."""
    bin_dir = settings.DEPLOYMENTS["PG_BIN_DIR"]
    found = str(Path(bin_dir) / name) if bin_dir else shutil.which(name)
    if not found or not Path(found).exists():
        raise DatabaseBackupError(
            f"{name} not found {'in ' + bin_dir if bin_dir else 'on PATH'}: install the PostgreSQL "
            "client programs or set DEPLOY_PG_BIN_DIR"
        )
    return found


def pg_tool_major(name: str) -> int:
    """Return the major version of a PostgreSQL client program (15 for 'pg_dump (PostgreSQL) 15.20')."""
    output = _run([pg_tool(name), "--version"], env=os.environ.copy(), timeout=30).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", output)
    if match is None:
        raise DatabaseBackupError(f"could not read the version of {name} from {output.strip()!r}")
    return int(match.group(1))


def pg_backup(settings_dict: dict[str, Any], path: Path, server_major: int) -> dict[str, Any]:
    """Dump a PostgreSQL database in pg_dump's custom format and list the tables it holds."""
    tool_major = pg_tool_major("pg_dump")
    if tool_major != server_major:
        raise DatabaseBackupError(
            f"pg_dump is version {tool_major} but the server is PostgreSQL {server_major}: install "
            f"postgresql-client-{server_major} and point DEPLOY_PG_BIN_DIR at its bin folder"
        )
    env = _pg_env(settings_dict)
    _run(
        [
            pg_tool("pg_dump"),
            "--format=custom",
            f"--lock-wait-timeout={PG_LOCK_TIMEOUT_MS}",
            f"--file={path}",
        ],
        env=env,
        timeout=PG_COMMAND_TIMEOUT,
    )
    # Listing the archive proves that pg_restore can read it before anything depends on it.
    listing = _run([pg_tool("pg_restore"), "--list", str(path)], env=env, timeout=PG_COMMAND_TIMEOUT).stdout
    tables = sorted(
        parts[parts.index("TABLE") + 2]
        for parts in (line.split() for line in listing.splitlines() if not line.startswith(";"))
        if "TABLE" in parts and "DATA" not in parts and len(parts) > parts.index("TABLE") + 2
    )
    return {
        "engine": "postgresql",
        "name": settings_dict["NAME"],
        "host": settings_dict.get("HOST") or "",
        "server_major": server_major,
        "pg_dump_major": tool_major,
        "tables": tables,
    }


def pg_restore(settings_dict: dict[str, Any], path: Path) -> str:
    """Replace the schema's tables with the archive's in one transaction; return psql's output.

    pg_restore first writes the archive as an SQL script to a file beside it. Piping it straight
    into psql would be unsafe: psql commits whatever arrived when the input ends, so an archive
    that breaks half-way would leave half a database.
    """
    env = _pg_env(settings_dict)
    # The lock timeout turns a wait on a busy table into an error, and the single transaction
    # then leaves the database as it was.
    env["PGOPTIONS"] = f"-c lock_timeout={PG_LOCK_TIMEOUT_MS}"
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix="restore-", suffix=".sql") as script:
        os.chmod(script.name, 0o600)
        _run(
            [
                pg_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                f"--file={script.name}",
                str(path),
            ],
            env=env,
            timeout=PG_COMMAND_TIMEOUT,
        )
        command = [
            pg_tool("psql"), "--no-psqlrc", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1",
            "--command", _DROP_ALL_TABLES, f"--file={script.name}",
        ]  # fmt: skip
        try:
            _run(command, env=env, timeout=PG_COMMAND_TIMEOUT)
        except DatabaseBackupError as error:
            raise DatabaseBackupError(
                f"restoring {path} into {settings_dict['NAME']} failed and was rolled back: {error} "
                "(if it timed out on a lock, stop the web server and workers and run the rollback again)"
            ) from error
    return f"restored {path} into the PostgreSQL database {settings_dict['NAME']}"


def _pg_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    """Return the environment that points libpq at the database; the password never reaches argv or logs."""
    env = os.environ.copy()
    options = settings_dict.get("OPTIONS") or {}
    values = {
        "PGHOST": settings_dict.get("HOST") or "",
        "PGPORT": str(settings_dict.get("PORT") or ""),
        "PGUSER": settings_dict.get("USER") or "",
        "PGPASSWORD": settings_dict.get("PASSWORD") or "",
        "PGDATABASE": settings_dict["NAME"],
        "PGSSLMODE": options.get("sslmode", ""),
        "PGCONNECT_TIMEOUT": "10",
        "PGAPPNAME": "vpnmerger-deploy",
    }
    env.update({key: value for key, value in values.items() if value})
    return env


def _run(command: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise DatabaseBackupError(f"{Path(command[0]).name} timed out after {timeout:.0f} s") from error
    if completed.returncode != 0:
        raise DatabaseBackupError(
            f"{Path(command[0]).name} failed with exit code {completed.returncode}: "
            f"{completed.stderr.strip()}"
        )
    return completed
