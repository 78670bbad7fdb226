"""Automated recovery: each action's effect, its dry run, the attempt bound and the records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from merger.models import MergeRun, Source
from monitoring.checks import CheckResult
from monitoring.models import Alert, RecoveryAttempt, SourceBreaker
from monitoring.recovery import run_recovery
from tests.test_monitoring_checks import running_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitoring(settings):
    def update(**values):
        settings.MONITORING = {**settings.MONITORING, **values}

    update(
        RECOVERY_ENABLED=True,
        RECOVERY_DRY_RUN=False,
        RECOVERY_MAX_ATTEMPTS=3,
        RECOVERY_WINDOW=3600,
        BREAKER_FAILURES=3,
        BREAKER_COOLDOWN=3600,
        CHECK_TIMEOUT=0.5,
        ALERT_EMAILS=[],
        WEBHOOK_URL="",
    )
    return update


def result(name: str, status: str = "critical", value: float | None = 1.0) -> CheckResult:
    return CheckResult(name, status, value, "")


def stuck_run(now) -> MergeRun:
    return MergeRun.objects.create(
        status="running", started_at=now - timedelta(hours=2), heartbeat_at=now - timedelta(hours=1)
    )


# --- stuck runs -------------------------------------------------------------------------------


def test_stuck_run_marked_failed(monitoring):
    now = timezone.now()
    run = stuck_run(now)
    alive = MergeRun.objects.create(status="running", started_at=now, heartbeat_at=now)
    [attempt] = run_recovery([result("stuck_runs", "warning")], now=now)
    run.refresh_from_db()
    alive.refresh_from_db()
    assert run.status == "failed"
    assert "no heartbeat" in run.error
    assert alive.status == "running"
    assert attempt.outcome == "succeeded"
    assert f"#{run.pk}" in attempt.detail


def test_stuck_run_dry_run_changes_nothing(monitoring):
    monitoring(RECOVERY_DRY_RUN=True)
    now = timezone.now()
    run = stuck_run(now)
    [attempt] = run_recovery([result("stuck_runs", "warning")], now=now)
    run.refresh_from_db()
    assert run.status == "running"
    assert attempt.outcome == "dry_run"
    assert "would mark" in attempt.detail


def test_action_not_run_for_ok_check(monitoring):
    now = timezone.now()
    run = stuck_run(now)
    assert run_recovery([result("stuck_runs", "ok", 0)], now=now) == []
    run.refresh_from_db()
    assert run.status == "running"


def test_attempts_bounded_per_window(monitoring):
    monitoring(RECOVERY_DRY_RUN=True, RECOVERY_MAX_ATTEMPTS=2)
    now = timezone.now()
    stuck_run(now)
    for minute in range(4):
        run_recovery([result("stuck_runs", "warning")], now=now + timedelta(minutes=minute))
    assert RecoveryAttempt.objects.filter(action="fail_stuck_runs").count() == 2
    # After the window the action may run again.
    run_recovery([result("stuck_runs", "warning")], now=now + timedelta(hours=2))
    assert RecoveryAttempt.objects.filter(action="fail_stuck_runs").count() == 3


def test_recovery_disabled(monitoring):
    monitoring(RECOVERY_ENABLED=False)
    now = timezone.now()
    stuck_run(now)
    assert run_recovery([result("stuck_runs", "warning")], now=now) == []
    assert not RecoveryAttempt.objects.exists()


# --- circuit breaker ---------------------------------------------------------------------------


def test_breaker_disables_failing_source(monitoring):
    now = timezone.now()
    failing = Source.objects.create(name="flaky", url="http://127.0.0.1/a", consecutive_failures=3)
    healthy = Source.objects.create(name="fine", url="http://127.0.0.1/b", consecutive_failures=1)
    [attempt] = run_recovery([result("failing_sources", "warning")], now=now)
    failing.refresh_from_db()
    healthy.refresh_from_db()
    assert failing.enabled is False
    assert healthy.enabled is True
    breaker = SourceBreaker.objects.get(source=failing)
    assert breaker.state == "open"
    assert breaker.retry_at == now + timedelta(hours=1)
    assert attempt.outcome == "succeeded"
    assert "disable flaky" in attempt.detail
    alert = Alert.objects.get(key=f"breaker:source:{failing.pk}")
    assert alert.severity == "info"


def test_breaker_dry_run_keeps_source(monitoring):
    monitoring(RECOVERY_DRY_RUN=True)
    source = Source.objects.create(name="flaky", url="http://127.0.0.1/a", consecutive_failures=5)
    [attempt] = run_recovery([result("failing_sources", "warning")])
    source.refresh_from_db()
    assert source.enabled is True
    assert not SourceBreaker.objects.exists()
    assert attempt.outcome == "dry_run"
    assert "would disable flaky" in attempt.detail


def test_breaker_reenables_after_cooldown_and_trips_on_trial(monitoring):
    now = timezone.now()
    source = Source.objects.create(name="flaky", url="http://127.0.0.1/a", consecutive_failures=3)
    run_recovery([result("failing_sources", "warning")], now=now)

    # Before the cool-down ends nothing changes, and nothing is recorded.
    assert run_recovery([result("failing_sources", "ok", 0)], now=now + timedelta(minutes=30)) == []
    source.refresh_from_db()
    assert source.enabled is False

    [attempt] = run_recovery([result("failing_sources", "ok", 0)], now=now + timedelta(hours=1, minutes=1))
    source.refresh_from_db()
    assert source.enabled is True
    assert "re-enable flaky" in attempt.detail
    assert SourceBreaker.objects.get(source=source).state == "half_open"
    assert not Alert.objects.filter(key=f"breaker:source:{source.pk}", resolved_at__isnull=True).exists()

    # One more failure on trial disables it again, below the usual limit.
    Source.objects.filter(pk=source.pk).update(consecutive_failures=4)
    run_recovery([result("failing_sources", "warning")], now=now + timedelta(hours=2))
    source.refresh_from_db()
    breaker = SourceBreaker.objects.get(source=source)
    assert source.enabled is False
    assert breaker.state == "open"
    assert breaker.trips == 2


def test_breaker_closes_when_trial_source_recovers(monitoring):
    now = timezone.now()
    source = Source.objects.create(name="flaky", url="http://127.0.0.1/a", consecutive_failures=3)
    run_recovery([result("failing_sources", "warning")], now=now)
    run_recovery([result("failing_sources", "ok", 0)], now=now + timedelta(hours=2))
    Source.objects.filter(pk=source.pk).update(consecutive_failures=0)
    run_recovery([result("failing_sources", "ok", 0)], now=now + timedelta(hours=3))
    assert SourceBreaker.objects.get(source=source).state == "closed"


def test_breaker_leaves_operator_disabled_source(monitoring):
    now = timezone.now()
    source = Source.objects.create(
        name="off", url="http://127.0.0.1/a", consecutive_failures=9, enabled=False
    )
    run_recovery([result("failing_sources", "warning")], now=now + timedelta(days=1))
    source.refresh_from_db()
    assert source.enabled is False
    assert not SourceBreaker.objects.exists()


# --- disk --------------------------------------------------------------------------------------


@pytest.fixture
def export_runs(settings, tmp_path):
    """Five succeeded runs with export folders run-1..run-5 under a temporary EXPORT_DIR."""
    settings.VPNMERGER = {**settings.VPNMERGER, "EXPORT_DIR": tmp_path}
    now = timezone.now()
    folders = []
    for index in range(5):
        run = MergeRun.objects.create(
            status="succeeded",
            started_at=now - timedelta(hours=10 - index),
            finished_at=now - timedelta(hours=10 - index, minutes=-1),
        )
        folder = tmp_path / f"run-{run.pk}"
        folder.mkdir()
        (folder / "all.txt").write_bytes(b"x" * 1024)
        run.export_dir = str(folder)
        run.save(update_fields=["export_dir"])
        folders.append(folder)
    (tmp_path / "keep-me").mkdir()
    return folders


def test_free_disk_space_deletes_old_exports(monitoring, export_runs, tmp_path):
    monitoring(DISK_KEEP_EXPORTS=2)
    [attempt] = run_recovery([result("disk", "critical", 97.0)])
    assert [folder.exists() for folder in export_runs] == [False, False, False, True, True]
    assert (tmp_path / "keep-me").exists()
    assert attempt.outcome == "succeeded"
    assert "deleted 3 export folders" in attempt.detail


def test_free_disk_space_dry_run(monitoring, export_runs):
    monitoring(DISK_KEEP_EXPORTS=2, RECOVERY_DRY_RUN=True)
    [attempt] = run_recovery([result("disk", "critical", 97.0)])
    assert all(folder.exists() for folder in export_runs)
    assert attempt.outcome == "dry_run"
    assert export_runs[0].name in attempt.detail


def test_free_disk_space_not_run_on_warning(monitoring, export_runs):
    assert run_recovery([result("disk", "warning", 90.0)]) == []
    assert all(folder.exists() for folder in export_runs)


# --- worker pool -------------------------------------------------------------------------------


def test_pool_restart_skipped_without_broker(monitoring, settings):
    settings.CELERY_BROKER_URL = ""
    [attempt] = run_recovery([result("workers", "critical", None)])
    assert attempt.outcome == "skipped"


def test_pool_restart_fails_when_no_worker_answers(monitoring, settings, require_service):
    require_service("redis")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/6"
    [attempt] = run_recovery([result("workers", "critical", None)])
    assert attempt.outcome == "failed"
    assert "no worker replied" in attempt.detail


@pytest.mark.parametrize(
    ("restarts_enabled", "outcome", "detail"),
    [(True, "succeeded", "pool restarted on"), (False, "failed", "rejected by")],
)
def test_pool_restart_reaches_running_worker(
    monitoring, settings, require_service, restarts_enabled, outcome, detail
):
    require_service("redis")
    url = "redis://127.0.0.1:6379/6"
    settings.CELERY_BROKER_URL = url
    monitoring(CHECK_TIMEOUT=2.0)
    with running_worker(url, worker_pool_restarts=restarts_enabled) as hostname:
        [attempt] = run_recovery([result("workers", "critical", None)])
    assert attempt.outcome == outcome
    assert detail in attempt.detail
    assert hostname in attempt.detail
