"""Deployments on the configured database: pre-checks, backup, apply, verify and rollback.

Tests that back up and restore use transactional test databases, because a restore must run
outside a transaction. On SQLite pytest-django's test database is a shared in-memory database.
The restore writes into it through Django's own sqlite3 connection with the online backup API,
so it replaces exactly the database the test reads. On PostgreSQL the restore closes Django's
connection and replays the dump into the test database with psql in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

from deployments import actions, backups, services, steps
from deployments.models import Backup, Deployment, InstalledVersion
from merger import services as merge_services
from merger.models import MergeRun, OutputProfile, Source
from monitoring import checks as health_checks
from tests.conftest import SAMPLES_DIR
from vpnmerger.periodic import JOBS

FAILING_APP = "tests.failing_migration_app"


def table_checksums(exclude: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Return (row count, SHA-256 of the sorted rows) per table, leaving out tables named in `exclude`."""
    result = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            if table in exclude:
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
            result[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return result


def files_under(folder: Path) -> dict[str, float]:
    if not folder.exists():
        return {}
    return {str(path.relative_to(folder)): path.stat().st_mtime for path in folder.rglob("*")}


def health_result(status: str) -> health_checks.CheckResult:
    return health_checks.CheckResult(
        name="database", status=status, value=1.0, message=f"database is {status}"
    )


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> Path:
    # Shared by every test, so collectstatic copies the files once and later runs only compare.
    return tmp_path_factory.mktemp("static")


@pytest.fixture
def deploy_settings(settings, tmp_path, static_root, monkeypatch):
    settings.VAR_DIR = tmp_path / "var"
    settings.STATIC_ROOT = static_root
    settings.CELERY_BROKER_URL = ""
    settings.VPNMERGER = {**settings.VPNMERGER, "EXPORT_DIR": tmp_path / "exports"}
    settings.DEPLOYMENTS = {
        **settings.DEPLOYMENTS,
        "BACKUP_DIR": tmp_path / "backups",
        "MIN_FREE_DISK_MB": 1,
        "BACKUP_RETENTION": 5,
        "SAMPLES_DIR": SAMPLES_DIR,
    }
    # The real health checks measure this machine's CPU, which other test runs keep busy; each
    # test states the health it needs.
    monkeypatch.setattr(health_checks, "run_checks", lambda *args, **kwargs: [health_result("ok")])
    return settings


@pytest.fixture
def content():
    """Sources, a profile, a succeeded merge with exports and a recorded version, like a live site."""
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    Source.objects.create(
        name="clash", url=str(SAMPLES_DIR / "clash.yaml"), headers={"Authorization": "Bearer x"}
    )
    OutputProfile.objects.create(name="phones", alive_only=False, top_n=50)
    run = merge_services.run_merge(inputs=merge_services.inputs_for_enabled_sources())
    assert run.status == MergeRun.Status.SUCCEEDED
    InstalledVersion.objects.create(version="1.0", reason=InstalledVersion.Reason.DEPLOY)
    return run


@pytest.mark.django_db
def test_dry_run_changes_only_its_record(deploy_settings, content):
    before = table_checksums(exclude=("deployments_deployment",))
    static_before = files_under(deploy_settings.STATIC_ROOT)

    deployment = services.start_deployment("2.0", dry_run=True, started_by="tester")

    assert deployment.status == Deployment.Status.SUCCEEDED
    assert deployment.dry_run
    assert table_checksums(exclude=("deployments_deployment",)) == before
    assert Deployment.objects.count() == 1
    assert not Path(deploy_settings.DEPLOYMENTS["BACKUP_DIR"]).exists()
    assert files_under(deploy_settings.STATIC_ROOT) == static_before
    assert actions.current_version() == "1.0"
    assert [step["phase"] for step in deployment.steps] == ["precheck"] * len(services.PRECHECKS)
    assert any("record version 2.0 as current (now 1.0)" in item for item in deployment.plan)
    assert any(f"exports of merge run #{content.pk}" in item for item in deployment.plan)


@pytest.mark.django_db
def test_dry_run_command_prints_plan(deploy_settings):
    out = StringIO()
    call_command("deploy", "--version", "3.1", "--dry-run", stdout=out)

    text = out.getvalue()
    assert "precheck.system_checks:" in text
    assert "Plan:" in text
    assert "skip the worker reload (no broker configured)" in text
    assert Deployment.objects.get().started_by.endswith("(deploy command)")


@pytest.mark.django_db(transaction=True)
def test_deployment_succeeds_in_embedded_default(deploy_settings, content):
    deployment = services.start_deployment("2.0", started_by="tester")

    assert deployment.status == Deployment.Status.SUCCEEDED, deployment.steps
    statuses = {f"{step['phase']}.{step['name']}": step["status"] for step in deployment.steps}
    assert statuses["apply.migrate"] == "ok"
    assert statuses["apply.collect_static"] == "ok"
    assert statuses["apply.reload_workers"] == "skipped"
    assert statuses["monitoring.schedules"] == "skipped"
    assert statuses["verify.sample_merge"] == "ok"
    assert "failed" not in statuses.values()
    assert all(step["duration_ms"] is not None for step in deployment.steps)
    assert actions.current_version() == "2.0"
    assert deployment.previous_version == "1.0"
    assert (Path(deploy_settings.STATIC_ROOT) / "admin" / "css" / "base.css").exists()


@pytest.mark.django_db(transaction=True)
def test_verification_merge_leaves_no_trace(deploy_settings, content):
    runs_before = list(MergeRun.objects.values_list("pk", flat=True))
    exports_before = files_under(Path(content.export_dir))

    outcome = actions.verify_sample_merge()

    assert outcome.status == "ok", outcome.output
    assert "unique nodes" in outcome.output
    assert list(MergeRun.objects.values_list("pk", flat=True)) == runs_before
    assert files_under(Path(content.export_dir)) == exports_before


@pytest.mark.django_db(transaction=True)
def test_backup_set_files_match_their_checksums(deploy_settings, content):
    deployment = services.start_deployment("2.0")

    backups_by_kind = {backup.kind: backup for backup in deployment.backups.all()}
    assert set(backups_by_kind) == {"database", "settings", "profiles", "exports"}
    for backup in backups_by_kind.values():
        data = Path(backup.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == backup.sha256
        assert len(data) == backup.size
        assert Path(backup.path).stat().st_mode & 0o077 == 0
    assert deployment.backup == backups_by_kind["database"]
    assert backups_by_kind["exports"].meta["run_id"] == content.pk

    profiles = json.loads(Path(backups_by_kind["profiles"].path).read_text())
    assert sorted(item["model"] for item in profiles) == [
        "merger.outputprofile",
        "merger.source",
        "merger.source",
    ]


@pytest.mark.django_db
def test_settings_backup_masks_secrets(deploy_settings, monkeypatch):
    deploy_settings.SECRET_KEY = "very-secret-key-value-1234567890-abcdefghijklmnopqrstuvwxyz"
    deploy_settings.CELERY_RESULT_BACKEND = "redis://worker:hunter2@127.0.0.1:6379/3"
    monkeypatch.setitem(deploy_settings.DATABASES["default"], "PASSWORD", "db-pass-42")

    text = json.dumps(backups.effective_settings(), default=str)

    assert "very-secret-key-value" not in text
    assert "hunter2" not in text
    assert "db-pass-42" not in text
    assert "redis://worker:********@127.0.0.1:6379/3" in text
    assert '"TIME_ZONE": "UTC"' in text


@pytest.mark.django_db(transaction=True)
def test_failing_migration_rolls_back_database(deploy_settings, content):
    before = table_checksums(
        exclude=("deployments_deployment", "deployments_backup", "deployments_installedversion")
    )
    deploy_settings.INSTALLED_APPS = [*deploy_settings.INSTALLED_APPS, FAILING_APP]

    deployment = services.start_deployment("2.0", started_by="tester")

    assert deployment.status == Deployment.Status.ROLLED_BACK, deployment.steps
    migrate_step = next(step for step in deployment.steps if step["name"] == "migrate")
    assert migrate_step["status"] == "failed"
    # 0001 was applied and committed before 0002 failed, so only the restore can undo it.
    assert "Applying failing_migration_app.0001_initial... OK" in migrate_step["output"]
    assert "fails on purpose" in migrate_step["output"]
    after = table_checksums(
        exclude=("deployments_deployment", "deployments_backup", "deployments_installedversion")
    )
    assert "failing_migration_app_widget" not in after
    assert after == before
    assert sorted(Source.objects.values_list("name", flat=True)) == ["clash", "links"]
    assert actions.current_version() == "1.0"

    # The record written during the deployment survives the restore that removed it.
    stored = Deployment.objects.get(pk=deployment.pk)
    assert stored.status == Deployment.Status.ROLLED_BACK
    assert [step["name"] for step in stored.steps][-2:] == ["restore_database", "record_version"]
    assert stored.steps[-2]["status"] == "ok"
    assert stored.backup_id == deployment.backup_id
    assert Backup.objects.filter(deployment=stored).count() == 4
    assert list(InstalledVersion.objects.order_by("pk").values_list("version", "reason")) == [
        ("1.0", "deploy"),
        ("1.0", "rollback"),
    ]


@pytest.mark.django_db(transaction=True)
def test_failed_verification_rolls_back(deploy_settings, content, monkeypatch):
    results = iter([[health_result("ok")], [health_result("critical")]])
    monkeypatch.setattr(health_checks, "run_checks", lambda *args, **kwargs: next(results))

    deployment = services.start_deployment("2.0")

    assert deployment.status == Deployment.Status.ROLLED_BACK
    health_step = next(step for step in deployment.steps if step["phase"] == "verify")
    assert health_step["status"] == "failed"
    assert "database: critical" in health_step["output"]
    assert actions.current_version() == "1.0"


@pytest.mark.django_db(transaction=True)
def test_unreachable_broker_fails_reload_and_rolls_back(deploy_settings, content):
    # Port 9 (discard) on loopback has no broker, so the connection is refused at once.
    deploy_settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    deploy_settings.DEPLOYMENTS = {**deploy_settings.DEPLOYMENTS, "WORKER_RELOAD_TIMEOUT": 1.0}

    deployment = services.start_deployment("2.0")

    reload_step = next(step for step in deployment.steps if step["name"] == "reload_workers")
    assert reload_step["status"] == "failed"
    assert deployment.status == Deployment.Status.ROLLED_BACK
    assert actions.current_version() == "1.0"


@pytest.mark.django_db(transaction=True)
def test_precheck_failure_changes_nothing(deploy_settings, content):
    MergeRun.objects.create(status=MergeRun.Status.RUNNING)
    before = table_checksums(exclude=("deployments_deployment",))

    deployment = services.start_deployment("2.0")

    assert deployment.status == Deployment.Status.FAILED
    failed = [step["name"] for step in deployment.steps if step["status"] == "failed"]
    assert failed == ["no_merge_running"]
    assert table_checksums(exclude=("deployments_deployment",)) == before
    assert not Path(deploy_settings.DEPLOYMENTS["BACKUP_DIR"]).exists()


@pytest.mark.django_db
def test_critical_health_blocks_deployment(deploy_settings, monkeypatch):
    monkeypatch.setattr(health_checks, "run_checks", lambda *args, **kwargs: [health_result("critical")])

    deployment = services.start_deployment("2.0", dry_run=True)

    health_step = next(step for step in deployment.steps if step["name"] == "health")
    assert health_step["status"] == "failed"
    assert deployment.status == Deployment.Status.FAILED


@pytest.mark.django_db
def test_debug_on_is_a_blocking_check(deploy_settings):
    deploy_settings.DEBUG = True

    outcome = services.checks.system_checks()

    assert outcome.status == "failed"
    assert "blocking security.W018" in outcome.output


@pytest.mark.django_db
def test_low_disk_space_blocks(deploy_settings):
    deploy_settings.DEPLOYMENTS = {**deploy_settings.DEPLOYMENTS, "MIN_FREE_DISK_MB": 10**12}

    outcome = services.checks.disk_space()

    assert outcome.status == "failed"
    assert "DEPLOY_MIN_FREE_DISK_MB" in outcome.output


@pytest.mark.django_db
def test_pending_migration_is_listed(deploy_settings):
    deploy_settings.INSTALLED_APPS = [*deploy_settings.INSTALLED_APPS, FAILING_APP]

    outcome = services.checks.migration_plan()

    assert outcome.data["pending"] == [
        "failing_migration_app.0001_initial",
        "failing_migration_app.0002_fail",
    ]


@pytest.mark.django_db
def test_deployment_runs_once(deploy_settings):
    deployment = services.create_deployment("2.0", dry_run=True)
    services.run_deployment(deployment.pk)

    with pytest.raises(services.DeploymentError, match="is not pending"):
        services.run_deployment(deployment.pk)


@pytest.mark.django_db
def test_real_deployment_rejected_inside_transaction(deploy_settings):
    deployment = services.create_deployment("2.0")

    with pytest.raises(services.DeploymentError, match="outside atomic"):
        services.run_deployment(deployment.pk)


@pytest.mark.django_db(transaction=True)
def test_rollback_command_restores_backup(deploy_settings, content):
    first = services.start_deployment("2.0")
    assert first.status == Deployment.Status.SUCCEEDED
    before = table_checksums(
        exclude=("deployments_deployment", "deployments_backup", "deployments_installedversion")
    )
    Source.objects.filter(name="links").delete()
    OutputProfile.objects.update(top_n=7)

    out = StringIO()
    # Without an id the rollback picks the backup taken before the newest succeeded deployment.
    call_command("rollback", stdout=out)

    assert "current version: 1.0" in out.getvalue()
    after = table_checksums(
        exclude=("deployments_deployment", "deployments_backup", "deployments_installedversion")
    )
    assert after == before
    assert actions.current_version() == "1.0"
    rollback = Deployment.objects.get(kind=Deployment.Kind.ROLLBACK)
    assert rollback.status == Deployment.Status.SUCCEEDED
    assert rollback.backup_id == first.backup_id
    # The deployment made after the backup is still on record.
    assert Deployment.objects.get(pk=first.pk).status == Deployment.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_rollback_rejects_changed_backup(deploy_settings, content):
    deployment = services.start_deployment("2.0")
    with Path(deployment.backup.path).open("ab") as handle:
        handle.write(b"tampered")

    out = StringIO()
    with pytest.raises(CommandError, match="a pre-check failed"):
        call_command("rollback", stdout=out)

    assert "does not match its recorded checksum" in out.getvalue()
    assert Source.objects.count() == 2


@pytest.mark.django_db
def test_rollback_of_settings_backup_names_database_backup(deploy_settings):
    deployment = Deployment.objects.create(version="2.0")
    database_backup = Backup.objects.create(
        deployment=deployment, kind="database", path="/x", sha256="0" * 64, size=1
    )
    settings_backup = Backup.objects.create(
        deployment=deployment, kind="settings", path="/y", sha256="0" * 64, size=1
    )

    with pytest.raises(CommandError, match=f"use {database_backup.pk}, the database backup"):
        call_command("rollback", str(settings_backup.pk))


@pytest.mark.django_db(transaction=True)
def test_old_backups_beyond_retention_are_removed(deploy_settings):
    deploy_settings.DEPLOYMENTS = {**deploy_settings.DEPLOYMENTS, "BACKUP_RETENTION": 2}

    deployments = [services.start_deployment(f"2.{number}") for number in range(3)]

    assert [deployment.status for deployment in deployments] == ["succeeded"] * 3
    oldest_folder = Path(deployments[0].backup.path).parent
    assert not oldest_folder.exists()
    assert not Backup.objects.filter(deployment=deployments[0]).exists()
    assert Backup.objects.filter(deployment=deployments[2], kind="database").exists()
    assert {backup.deployment_id for backup in Backup.objects.all()} == {deployments[1].pk, deployments[2].pk}


@pytest.mark.django_db(transaction=True)
def test_progress_events_published(deploy_settings, monkeypatch):
    sent = []
    monkeypatch.setattr(
        steps.events, "publish", lambda topic, event, payload: sent.append((topic, event, payload))
    )

    deployment = services.start_deployment("2.0", dry_run=True)

    assert {(topic, event) for topic, event, _payload in sent} == {("deployments", "deployment.progress")}
    step_events = [payload["step"] for _topic, _event, payload in sent if "step" in payload]
    finished_steps = [step for step in step_events if step["status"] != "running"]
    assert [step["name"] for step in finished_steps] == list(services.PRECHECKS)
    assert sent[-1][2]["status"] == "succeeded"
    assert sent[-1][2]["deployment_id"] == deployment.pk
    assert sent[-1][2]["steps_done"] == sent[-1][2]["steps_total"] == len(services.PRECHECKS)


@pytest.mark.django_db
def test_detail_and_history(deploy_settings):
    deployment = services.start_deployment("2.0", dry_run=True, started_by="alice")

    detail = services.deployment_detail(deployment.pk)
    history = services.list_deployments()

    assert detail["version"] == "2.0"
    assert detail["started_by"] == "alice"
    assert detail["status"] == "succeeded"
    assert len(detail["steps"]) == len(services.PRECHECKS)
    assert [item.pk for item in history] == [deployment.pk]


@pytest.mark.django_db
def test_empty_version_rejected(deploy_settings):
    with pytest.raises(services.DeploymentError, match="version is empty"):
        services.create_deployment("  ")


@pytest.mark.django_db
def test_running_deployment_blocks_until_marked_failed(deploy_settings):
    stale = Deployment.objects.create(version="1.9", status=Deployment.Status.RUNNING)

    blocked = services.start_deployment("2.0", dry_run=True)
    released = services.abandon_deployment(stale.pk)
    allowed = services.start_deployment("2.0", dry_run=True)

    assert blocked.status == Deployment.Status.FAILED
    assert f"#{stale.pk} still running" in blocked.steps[-1]["output"]
    assert released
    assert Deployment.objects.get(pk=stale.pk).status == Deployment.Status.FAILED
    assert allowed.status == Deployment.Status.SUCCEEDED


@pytest.mark.django_db
def test_admin_pages_show_steps_and_plan(deploy_settings, admin_client):
    deployment = services.start_deployment("2.0", dry_run=True)

    listing = admin_client.get("/admin/deployments/deployment/")
    detail = admin_client.get(f"/admin/deployments/deployment/{deployment.pk}/change/")

    assert listing.status_code == 200
    assert detail.status_code == 200
    assert b"precheck.system_checks" in detail.content
    assert b"record version 2.0 as current" in detail.content
    assert admin_client.get("/admin/deployments/backup/").status_code == 200
    assert admin_client.get("/admin/deployments/installedversion/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_broker_configured_reloads_and_checks_schedules(deploy_settings):
    # Kombu's in-process memory transport has no workers, so the broadcast gets no reply.
    deploy_settings.CELERY_BROKER_URL = "memory://"
    deploy_settings.DEPLOYMENTS = {**deploy_settings.DEPLOYMENTS, "WORKER_RELOAD_TIMEOUT": 0.2}
    PeriodicTask.objects.all().delete()

    deployment = services.start_deployment("2.0")

    statuses = {step["name"]: step for step in deployment.steps}
    assert deployment.status == Deployment.Status.SUCCEEDED
    assert statuses["reload_workers"]["status"] == "warning"
    assert "no worker answered" in statuses["reload_workers"]["output"]
    assert statuses["schedules"]["status"] == "ok"
    assert f"created {len(JOBS)} missing schedule(s)" in statuses["schedules"]["output"]
    assert PeriodicTask.objects.filter(name__in=[job.name for job in JOBS], enabled=True).count() == len(JOBS)


@pytest.mark.django_db
def test_disabled_schedules_reported(deploy_settings):
    deploy_settings.CELERY_BROKER_URL = "memory://"
    actions.schedules()
    PeriodicTask.objects.filter(name=JOBS[0].name).update(enabled=False)

    outcome = actions.schedules()

    assert outcome.status == "warning"
    assert f"disabled: {JOBS[0].name}" in outcome.output
