"""Alerts (open, update, resolve, acknowledge), notifications, snapshots and their clean-up."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from monitoring import alerts, notify, snapshots
from monitoring.checks import CheckResult
from monitoring.models import Alert, CheckSample, HealthSnapshot, NotificationDelivery, Threshold
from vpnmerger.events import group_name

pytestmark = pytest.mark.django_db


def disk(status: str, value: float) -> CheckResult:
    return CheckResult("disk", status, value, f"{value}% used", label="Disk space", unit="%")


@pytest.fixture
def monitoring(settings):
    def update(**values):
        settings.MONITORING = {**settings.MONITORING, **values}

    update(
        ALERT_EMAILS=[],
        WEBHOOK_URL="",
        WEBHOOK_SECRET="",
        RECOVERY_ENABLED=False,
        NOTIFY_MIN_SEVERITY="warning",
    )
    return update


@pytest.fixture
def webhook_receiver():
    """A real HTTP server on 127.0.0.1 that records POST bodies and responds with `.status`."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name is fixed by http.server
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((dict(self.headers), body))
            self.send_response(server.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 - silence per-request logging in tests
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.status = 204
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- alert cycle -------------------------------------------------------------------------------


def test_alert_opens_once_and_updates(monitoring):
    now = timezone.now()
    alerts.evaluate([disk("warning", 90.0)], now=now)
    alerts.evaluate([disk("warning", 91.0)], now=now + timedelta(minutes=1))
    open_alerts = list(alerts.open_alerts())
    assert len(open_alerts) == 1
    alert = open_alerts[0]
    assert alert.severity == "warning"
    assert alert.value == 91.0
    assert alert.occurrences == 2
    assert alert.opened_at == now


def test_alert_escalates_and_resolves(monitoring):
    now = timezone.now()
    alerts.evaluate([disk("warning", 90.0)], now=now)
    [(alert, change)] = alerts.evaluate([disk("critical", 97.0)], now=now + timedelta(minutes=1))
    assert change == "escalated"
    assert alert.severity == "critical"
    [(resolved, change)] = alerts.evaluate([disk("ok", 50.0)], now=now + timedelta(minutes=2))
    assert change == "resolved"
    assert resolved.resolved_at == now + timedelta(minutes=2)
    assert not alerts.open_alerts().exists()


def test_new_alert_after_resolution(monitoring):
    now = timezone.now()
    alerts.evaluate([disk("critical", 97.0)], now=now)
    alerts.evaluate([disk("ok", 50.0)], now=now + timedelta(minutes=1))
    alerts.evaluate([disk("critical", 98.0)], now=now + timedelta(minutes=2))
    assert Alert.objects.filter(key="check:disk").count() == 2
    assert alerts.open_alerts().count() == 1


def test_acknowledge_alert_records_user(monitoring, django_user_model):
    user = django_user_model.objects.create_user("operator")
    alerts.evaluate([disk("critical", 97.0)])
    alert = alerts.open_alerts().get()
    acknowledged = alerts.acknowledge_alert(alert.pk, user)
    assert acknowledged.acknowledged_by == user
    assert acknowledged.acknowledged_at is not None
    # Acknowledging does not resolve: the condition still holds.
    assert acknowledged.is_open


def test_acknowledge_unknown_alert_raises(monitoring):
    with pytest.raises(Alert.DoesNotExist):
        alerts.acknowledge_alert(999999, None)


def test_threshold_can_disable_alerts(monitoring):
    Threshold.objects.create(check_name="disk", warning=80, critical=95, alerts_enabled=False)
    alerts.evaluate([disk("critical", 97.0)])
    assert not Alert.objects.exists()


def test_threshold_warning_severity_info(monitoring):
    Threshold.objects.create(check_name="disk", warning=80, critical=95, warning_severity="info")
    alerts.evaluate([disk("warning", 90.0)])
    assert alerts.open_alerts().get().severity == "info"


def test_open_alerts_most_severe_first(monitoring):
    alerts.raise_alert("a", severity="info", title="A")
    alerts.raise_alert("b", severity="critical", title="B")
    alerts.raise_alert("c", severity="warning", title="C")
    assert [alert.key for alert in alerts.open_alerts()] == ["b", "c", "a"]


def test_alert_change_published_after_commit(monitoring, settings, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name("alerts"), channel)
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("critical", 97.0)])
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "alert.changed"
    assert message["change"] == "opened"
    assert message["alert"]["severity"] == "critical"


# --- notifications -----------------------------------------------------------------------------


def test_email_sent_on_open_and_resolve(monitoring, django_capture_on_commit_callbacks):
    monitoring(ALERT_EMAILS=["ops@example.test"])
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("critical", 97.0)])
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("ok", 40.0)])
    assert len(mail.outbox) == 2
    assert "opened" in mail.outbox[0].subject
    assert "resolved" in mail.outbox[1].subject
    assert mail.outbox[0].to == ["ops@example.test"]
    outcomes = list(NotificationDelivery.objects.values_list("outcome", flat=True))
    assert outcomes == ["sent", "sent"]


def test_plain_update_sends_nothing(monitoring, django_capture_on_commit_callbacks):
    monitoring(ALERT_EMAILS=["ops@example.test"])
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("critical", 97.0)])
        alerts.evaluate([disk("critical", 98.0)])
    assert len(mail.outbox) == 1


def test_info_alert_not_notified_below_minimum(monitoring, django_capture_on_commit_callbacks):
    monitoring(ALERT_EMAILS=["ops@example.test"])
    with django_capture_on_commit_callbacks(execute=True):
        alerts.raise_alert("breaker:source:1", severity="info", title="Source disabled")
    assert mail.outbox == []
    assert not NotificationDelivery.objects.exists()


def test_webhook_received_by_local_server(monitoring, webhook_receiver, django_capture_on_commit_callbacks):
    monitoring(WEBHOOK_URL=webhook_receiver.url, WEBHOOK_SECRET="shared-secret")
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("critical", 97.0)])
    assert len(webhook_receiver.received) == 1
    headers, body = webhook_receiver.received[0]
    document = json.loads(body)
    assert document["event"] == "alert.opened"
    assert document["alert"]["key"] == "check:disk"
    assert document["alert"]["value"] == 97.0
    assert headers["X-Vpnmerger-Signature"] == notify.webhook_signature(body, "shared-secret")
    delivery = NotificationDelivery.objects.get()
    assert delivery.outcome == "sent"
    assert delivery.status_code == 204


def test_webhook_error_status_recorded_as_failed(
    monitoring, webhook_receiver, django_capture_on_commit_callbacks
):
    monitoring(WEBHOOK_URL=webhook_receiver.url)
    webhook_receiver.status = 500
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate([disk("critical", 97.0)])
    delivery = NotificationDelivery.objects.get()
    assert delivery.outcome == "failed"
    assert delivery.status_code == 500
    assert "HTTP 500" in delivery.error


def test_notifications_rate_limited_per_channel(monitoring, django_capture_on_commit_callbacks):
    monitoring(ALERT_EMAILS=["ops@example.test"], NOTIFY_RATE_LIMIT=2, NOTIFY_RATE_WINDOW=3600)
    with django_capture_on_commit_callbacks(execute=True):
        for key in ("a", "b", "c"):
            alerts.raise_alert(key, severity="critical", title=key)
    assert len(mail.outbox) == 2
    outcomes = sorted(NotificationDelivery.objects.values_list("outcome", flat=True))
    assert outcomes == ["rate_limited", "sent", "sent"]


def test_delivery_sent_only_once(monitoring, django_capture_on_commit_callbacks):
    monitoring(ALERT_EMAILS=["ops@example.test"])
    with django_capture_on_commit_callbacks(execute=True):
        alerts.raise_alert("a", severity="critical", title="A")
    delivery = NotificationDelivery.objects.get()
    notify.deliver(delivery.pk)
    assert len(mail.outbox) == 1


# --- snapshots ---------------------------------------------------------------------------------


def test_take_snapshot_stores_samples_and_publishes(monitoring, settings, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name("health"), channel)
    with django_capture_on_commit_callbacks(execute=True):
        snapshot = snapshots.take_snapshot(
            results=[disk("warning", 90.0), CheckResult("cpu", "ok", 10.0, "")]
        )
    assert snapshot.status == "warning"
    assert set(snapshot.samples.values_list("name", flat=True)) == {"disk", "cpu"}
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "health.snapshot"
    assert message["snapshot"]["status"] == "warning"
    assert Alert.objects.filter(key="check:disk").exists()


def test_take_snapshot_runs_real_checks(monitoring):
    snapshot = snapshots.take_snapshot()
    names = set(snapshot.samples.values_list("name", flat=True))
    assert {"cpu", "memory", "disk", "database"} <= names
    assert snapshots.latest_snapshot() == snapshot


def test_take_health_snapshot_task(monitoring):
    from monitoring.tasks import cleanup_snapshots, take_health_snapshot

    snapshot_id = take_health_snapshot.delay().get()
    assert HealthSnapshot.objects.filter(pk=snapshot_id).exists()
    assert cleanup_snapshots.delay().get() == {"expired": 0, "thinned": 0}


def make_snapshots(start, count: int, step: timedelta) -> None:
    for index in range(count):
        moment = start + index * step
        snapshot = HealthSnapshot.objects.create(taken_at=moment, status="ok")
        CheckSample.objects.create(
            snapshot=snapshot, taken_at=moment, name="disk", status="ok", value=float(index)
        )


def test_cleanup_thins_old_and_deletes_expired(monitoring):
    monitoring(THIN_AFTER=24 * 3600, RETENTION_DAYS=7)
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    # Every 10 minutes for 3 hours, two days ago: 18 snapshots over 3 clock hours (+1 partial).
    make_snapshots(now - timedelta(days=2), 18, timedelta(minutes=10))
    # Ten days ago: past retention.
    make_snapshots(now - timedelta(days=10), 3, timedelta(minutes=10))
    # Recent: untouched.
    make_snapshots(now - timedelta(hours=1), 6, timedelta(minutes=10))
    counts = snapshots.cleanup_snapshots(now=now)
    assert counts["expired"] == 3
    old = HealthSnapshot.objects.filter(taken_at__lt=now - timedelta(days=1))
    hours = {snapshot.taken_at.replace(minute=0, second=0, microsecond=0) for snapshot in old}
    assert old.count() == len(hours)
    assert old.count() == 4
    assert counts["thinned"] == 14
    assert HealthSnapshot.objects.filter(taken_at__gte=now - timedelta(hours=1)).count() == 6
    # Samples go with their snapshots.
    assert CheckSample.objects.count() == HealthSnapshot.objects.count()


def test_trend_series_reads_window(monitoring):
    now = timezone.now()
    make_snapshots(now - timedelta(hours=3), 6, timedelta(hours=1))
    series = snapshots.trend_series("disk", hours=3.5, now=now + timedelta(hours=3))
    assert [value for _, value in series] == [3.0, 4.0, 5.0]


def test_snapshot_payload_is_json_safe(monitoring):
    snapshot = snapshots.take_snapshot(results=[disk("ok", 10.0)])
    payload = snapshots.snapshot_payload(snapshots.latest_snapshot())
    assert json.loads(json.dumps(payload))["checks"][0]["name"] == "disk"
    assert payload["id"] == snapshot.pk


def test_acknowledge_from_admin_action(monitoring, admin_client):
    alerts.raise_alert("a", severity="critical", title="A")
    alert = Alert.objects.get()
    response = admin_client.post(
        "/admin/monitoring/alert/", {"action": "acknowledge", "_selected_action": [alert.pk]}, follow=True
    )
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.acknowledged_by == get_user_model().objects.get(username="admin")
