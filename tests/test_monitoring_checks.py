"""Health checks: the registry, thresholds, and every built-in check healthy and failing."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from merger.models import MergeRun, Source
from monitoring import builtin_checks
from monitoring.checks import (
    CheckFailed,
    CheckResult,
    Measurement,
    Skip,
    exit_code,
    overall_status,
    register,
    run_checks,
    unregister,
)
from monitoring.models import Threshold

pytestmark = pytest.mark.django_db

REDIS_DB = 6


def closed_port() -> int:
    """Return a loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_worker(url: str, **conf):
    """Start a Celery worker thread on `url` and wait until it replies to a ping (10 s deadline).

    Celery's embedded worker makes its app the current and default app and configures logging, so
    both are restored afterwards to keep later tests on the project's app and log capture.
    """
    from celery import Celery, _state
    from celery.contrib.testing.worker import start_worker

    previous_current, previous_default = _state.get_current_app(), _state.default_app
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    # No Django fix-up: it closes the process's database connections when the pool (re)starts, and
    # this worker shares its process with the test.
    worker_app = Celery(
        "monitoring-test", broker=url, backend="cache+memory://", fixups=[], set_as_current=False
    )
    worker_app.conf.update(worker_hijack_root_logger=False, **conf)
    # A unique node name keeps a worker of an earlier test from replying for this one.
    hostname = f"monitoring-{uuid.uuid4().hex[:8]}@localhost"
    try:
        with start_worker(
            worker_app, pool="solo", perform_ping_check=False, shutdown_timeout=5, hostname=hostname
        ):
            deadline = time.monotonic() + 10
            while not worker_app.control.ping(destination=[hostname], timeout=0.5):
                if time.monotonic() > deadline:
                    pytest.fail(f"the test worker {hostname} did not reply to a ping within 10 s")
            yield hostname
    finally:
        previous_current.set_current()
        _state.set_default_app(previous_default)
        root.handlers[:] = root_handlers
        root.setLevel(root_level)


@pytest.fixture
def monitoring(settings):
    """Set MONITORING keys for one test: `monitoring(CHECK_TIMEOUT=0.5)`."""

    def update(**values):
        settings.MONITORING = {**settings.MONITORING, **values}

    update(CHECK_TIMEOUT=0.5)
    return update


@pytest.fixture
def custom_check():
    names: list[str] = []

    def add(name: str, value: float | None, **limits):
        register(name, replace=True, **limits)(lambda context: Measurement(value, f"value {value}"))
        names.append(name)

    yield add
    for name in names:
        unregister(name)


def only(name: str) -> CheckResult:
    (result,) = run_checks([name])
    return result


# --- registry and thresholds -----------------------------------------------------------------


def test_register_rejects_duplicate_name(custom_check):
    custom_check("sample_metric", 1.0)
    with pytest.raises(ValueError, match="already registered"):
        register("sample_metric")(lambda context: Measurement(1.0, ""))


def test_run_checks_rejects_unknown_name():
    with pytest.raises(KeyError, match="no_such_check"):
        run_checks(["no_such_check"])


def test_default_limits_decide_status(custom_check):
    custom_check("sample_metric", 50.0, warning=40, critical=90)
    result = only("sample_metric")
    assert result.status == "warning"
    assert result.value == 50.0


def test_threshold_row_overrides_defaults(custom_check):
    custom_check("sample_metric", 50.0, warning=40, critical=90)
    Threshold.objects.create(check_name="sample_metric", warning=60, critical=80)
    assert only("sample_metric").status == "ok"


def test_threshold_below_direction(custom_check):
    custom_check("sample_metric", 30.0)
    Threshold.objects.create(check_name="sample_metric", warning=50, critical=20, direction="below")
    assert only("sample_metric").status == "warning"


def test_raising_check_is_critical_with_message(custom_check):
    def broken(context):
        raise RuntimeError("sensor exploded")

    register("broken_metric", replace=True)(broken)
    try:
        result = only("broken_metric")
    finally:
        unregister("broken_metric")
    assert result.status == "critical"
    assert "sensor exploded" in result.message


def test_skip_and_check_failed_statuses():
    def skipped(context):
        raise Skip("not configured")

    def failed(context):
        raise CheckFailed("down")

    register("skipped_metric", replace=True)(skipped)
    register("failed_metric", replace=True)(failed)
    try:
        results = run_checks(["skipped_metric", "failed_metric"])
    finally:
        unregister("skipped_metric")
        unregister("failed_metric")
    assert [result.status for result in results] == ["skipped", "critical"]


def test_overall_status_ranks_worst():
    def result(status):
        return CheckResult("x", status, None, "")

    assert overall_status([result("ok"), result("skipped")]) == "ok"
    assert overall_status([result("ok"), result("warning")]) == "warning"
    assert overall_status([result("warning"), result("critical"), result("ok")]) == "critical"
    assert [exit_code(status) for status in ("ok", "warning", "critical")] == [0, 1, 2]


def test_builtin_checks_all_registered():
    names = {result.name for result in run_checks()}
    expected = {
        "cpu",
        "memory",
        "disk",
        "database",
        "broker",
        "workers",
        "channel_layer",
        "source_success_rate",
        "merge_freshness",
        "queue_backlog",
        "merge_duration",
        "stuck_runs",
        "failing_sources",
    }
    assert expected <= names


# --- system checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "memory", "disk"])
def test_system_check_ok_under_high_limits(name):
    Threshold.objects.create(check_name=name, warning=101, critical=101)
    result = only(name)
    assert result.status == "ok"
    assert 0 <= result.value <= 100


@pytest.mark.parametrize("name", ["cpu", "memory", "disk"])
def test_system_check_critical_when_limit_crossed(name):
    # A limit of 0% makes any real usage count as full: a full disk simulated by a threshold.
    Threshold.objects.create(check_name=name, warning=0, critical=0)
    assert only(name).status == "critical"


# --- database --------------------------------------------------------------------------------


def test_database_check_ok():
    result = only("database")
    assert result.status == "ok"
    assert result.value >= 0


# --- broker, workers and queue ----------------------------------------------------------------


def test_broker_and_workers_skipped_without_broker(settings):
    settings.CELERY_BROKER_URL = ""
    results = run_checks(["broker", "workers", "queue_backlog"])
    assert [result.status for result in results] == ["skipped", "skipped", "skipped"]


def test_broker_critical_on_closed_port(settings, monitoring):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/{REDIS_DB}"
    result = only("broker")
    assert result.status == "critical"
    assert "cannot reach the broker" in result.message


def test_broker_ok_with_real_redis(settings, monitoring, require_service):
    require_service("redis")
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
    result = only("broker")
    assert result.status == "ok"
    assert result.value >= 0


def test_broker_message_hides_password(settings, monitoring):
    settings.CELERY_BROKER_URL = f"redis://user:s3cret@127.0.0.1:{closed_port()}/{REDIS_DB}"
    assert "s3cret" not in only("broker").message


def test_workers_critical_when_no_worker_answers(settings, monitoring, require_service):
    require_service("redis")
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
    result = only("workers")
    assert result.status == "critical"
    assert "no Celery worker replied" in result.message


def test_workers_ok_with_running_worker(settings, monitoring, require_service):
    require_service("redis")
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    settings.CELERY_BROKER_URL = url
    monitoring(CHECK_TIMEOUT=2.0)
    with running_worker(url) as hostname:
        result = only("workers")
    assert result.status == "ok"
    assert result.value >= 1
    assert hostname in result.message


def test_queue_backlog_counts_redis_list(settings, monitoring, require_service):
    require_service("redis")
    import redis

    from vpnmerger.celery import app

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    settings.CELERY_BROKER_URL = url
    client = redis.Redis.from_url(url)
    queue = app.conf.task_default_queue
    client.delete(queue)
    client.rpush(queue, "a", "b", "c")
    try:
        Threshold.objects.create(check_name="queue_backlog", warning=2, critical=10)
        result = only("queue_backlog")
    finally:
        client.delete(queue)
        client.close()
    assert result.value == 3
    assert result.status == "warning"


def test_queue_backlog_critical_on_closed_port(settings, monitoring):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/{REDIS_DB}"
    assert only("queue_backlog").status == "critical"


# --- channel layer -----------------------------------------------------------------------------


def test_channel_layer_ok_in_memory(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    result = only("channel_layer")
    assert result.status == "ok"
    assert "InMemoryChannelLayer" in result.message


def test_channel_layer_ok_with_real_redis(settings, monitoring, require_service):
    require_service("redis")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:6379/{REDIS_DB}"]},
        }
    }
    assert only("channel_layer").status == "ok"


def test_channel_layer_critical_on_closed_port(settings, monitoring):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port()}/{REDIS_DB}"]},
        }
    }
    result = only("channel_layer")
    assert result.status == "critical"


# --- merge state ------------------------------------------------------------------------------


def make_run(
    *, minutes_ago: float = 5, seconds: float = 60, ok: int = 0, failed: int = 0, status="succeeded"
):
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    return MergeRun.objects.create(
        status=status,
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        sources_ok=ok,
        sources_failed=failed,
    )


def test_merge_checks_skipped_without_runs():
    results = run_checks(["source_success_rate", "merge_freshness", "merge_duration"])
    assert [result.status for result in results] == ["skipped", "skipped", "skipped"]


def test_merge_freshness_warns_when_sources_never_merged():
    Source.objects.create(name="a", url="http://127.0.0.1/a")
    result = only("merge_freshness")
    assert result.status == "warning"
    assert result.value is None


def test_merge_freshness_ok_when_recent():
    make_run(minutes_ago=10)
    result = only("merge_freshness")
    assert result.status == "ok"
    assert 590 <= result.value <= 700


def test_merge_freshness_critical_when_old():
    make_run(minutes_ago=2 * 24 * 60)
    assert only("merge_freshness").status == "critical"


def test_source_success_rate_ok_and_critical():
    make_run(minutes_ago=30, ok=9, failed=1)
    assert only("source_success_rate").value == 90.0
    assert only("source_success_rate").status == "ok"
    make_run(minutes_ago=1, ok=4, failed=6)
    result = only("source_success_rate")
    assert result.value == 40.0
    assert result.status == "critical"


def test_merge_duration_ok_and_critical():
    make_run(minutes_ago=30, seconds=60)
    assert only("merge_duration").status == "ok"
    make_run(minutes_ago=1, seconds=3600)
    result = only("merge_duration")
    assert result.value == 3600
    assert result.status == "critical"


def test_stuck_runs_detects_old_heartbeat():
    now = timezone.now()
    MergeRun.objects.create(status="running", started_at=now, heartbeat_at=now)
    assert only("stuck_runs").value == 0
    MergeRun.objects.create(
        status="running", started_at=now - timedelta(hours=2), heartbeat_at=now - timedelta(hours=1)
    )
    result = only("stuck_runs")
    assert result.value == 1
    assert result.status == "warning"


def test_failing_sources_counts_enabled_sources_over_limit(monitoring):
    monitoring(BREAKER_FAILURES=3)
    Source.objects.create(name="fine", url="http://127.0.0.1/a", consecutive_failures=1)
    assert only("failing_sources").status == "ok"
    Source.objects.create(name="broken", url="http://127.0.0.1/b", consecutive_failures=3)
    Source.objects.create(name="off", url="http://127.0.0.1/c", consecutive_failures=9, enabled=False)
    result = only("failing_sources")
    assert result.value == 1
    assert "broken" in result.message
    assert result.status == "warning"


def test_run_checks_is_thread_safe_for_cpu():
    # The CPU check keeps the time of its last call; two threads must both get a valid figure.
    values: list[float] = []

    def run():
        values.append(builtin_checks.check_cpu(None).value)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(values) == 2
    assert all(0 <= value <= 100 for value in values)
