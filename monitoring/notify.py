"""Alert notifications by e-mail (Django's mail) and webhook (httpx), rate-limited and recorded.

`queue_notifications` records one NotificationDelivery per configured channel and queues the
`deliver_notification` task after commit; `deliver` sends one recorded delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from monitoring.models import Alert, NotificationDelivery

logger = logging.getLogger(__name__)

Outcome = NotificationDelivery.Outcome
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
WEBHOOK_TIMEOUT = 5.0


def configured_channels() -> dict[str, str]:
    """Return channel -> target for every channel configured in settings.MONITORING."""
    config = settings.MONITORING
    channels: dict[str, str] = {}
    if config["ALERT_EMAILS"]:
        channels[NotificationDelivery.Channel.EMAIL] = ", ".join(config["ALERT_EMAILS"])
    if config["WEBHOOK_URL"]:
        channels[NotificationDelivery.Channel.WEBHOOK] = config["WEBHOOK_URL"]
    return channels


def _rate_limited(channel: str) -> bool:
    config = settings.MONITORING
    since = timezone.now() - timedelta(seconds=config["NOTIFY_RATE_WINDOW"])
    recent = NotificationDelivery.objects.filter(channel=channel, created_at__gt=since).exclude(
        outcome=Outcome.RATE_LIMITED
    )
    return recent.count() >= config["NOTIFY_RATE_LIMIT"]


def queue_notifications(alert: Alert, event: str) -> list[NotificationDelivery]:
    """Record a delivery per configured channel for the alert change and send them after commit.

    Alerts below MONITORING["NOTIFY_MIN_SEVERITY"] are not sent. Deliveries beyond the rate limit
    are recorded as rate_limited and not sent.
    """
    minimum = settings.MONITORING["NOTIFY_MIN_SEVERITY"]
    if _SEVERITY_RANK.get(alert.severity, 0) < _SEVERITY_RANK.get(minimum, 1):
        return []
    deliveries = []
    for channel, target in configured_channels().items():
        limited = _rate_limited(channel)
        delivery = NotificationDelivery.objects.create(
            alert=alert,
            event=event,
            channel=channel,
            target=target[:500],
            outcome=Outcome.RATE_LIMITED if limited else Outcome.PENDING,
        )
        deliveries.append(delivery)
        if limited:
            logger.warning("%s notification for alert %s not sent: rate limit reached", channel, alert.pk)
            continue
        transaction.on_commit(lambda delivery_id=delivery.pk: _enqueue(delivery_id))
    return deliveries


def _enqueue(delivery_id: int) -> None:
    from monitoring.tasks import deliver_notification

    deliver_notification.delay(delivery_id)


def webhook_body(delivery: NotificationDelivery) -> bytes:
    from monitoring.alerts import alert_payload

    return json.dumps(
        {"event": f"alert.{delivery.event}", "alert": alert_payload(delivery.alert)}, sort_keys=True
    ).encode()


def webhook_signature(body: bytes, secret: str) -> str:
    """Return "sha256=<hex HMAC of the body>", which a receiver recomputes with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(delivery_id: int) -> NotificationDelivery:
    """Send one pending delivery and record the outcome; a delivery already handled is left alone."""
    with transaction.atomic():
        # Claiming the row with an UPDATE that matches only a pending row keeps a retried task from
        # sending twice.
        claimed = NotificationDelivery.objects.filter(pk=delivery_id, outcome=Outcome.PENDING).update(
            outcome=Outcome.FAILED, error="sending"
        )
    delivery = NotificationDelivery.objects.select_related("alert", "alert__acknowledged_by").get(
        pk=delivery_id
    )
    if not claimed:
        return delivery
    try:
        if delivery.channel == NotificationDelivery.Channel.EMAIL:
            _send_email(delivery)
        else:
            response = _post_webhook(delivery)
            delivery.status_code = response.status_code
            if response.status_code >= 300:
                raise RuntimeError(f"webhook {delivery.target} returned HTTP {response.status_code}")
    except Exception as error:
        logger.warning(
            "%s notification %s for alert %s failed: %s",
            delivery.channel,
            delivery.pk,
            delivery.alert_id,
            error,
        )
        delivery.outcome = Outcome.FAILED
        delivery.error = f"{type(error).__name__}: {error}"[:500]
    else:
        delivery.outcome = Outcome.SENT
        delivery.error = ""
        delivery.sent_at = timezone.now()
    delivery.save(update_fields=["outcome", "error", "status_code", "sent_at"])
    return delivery


def _send_email(delivery: NotificationDelivery) -> None:
    alert = delivery.alert
    subject = f"[vpnmerger] {delivery.event}: {alert.title}"
    lines = [
        f"Alert {alert.key} was {delivery.event}.",
        f"Severity: {alert.severity}",
        f"Message: {alert.message}",
        f"Value: {alert.value}",
        f"Opened: {alert.opened_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if alert.resolved_at:
        lines.append(f"Resolved: {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
    send_mail(subject, "\n".join(lines), None, settings.MONITORING["ALERT_EMAILS"], fail_silently=False)


def _post_webhook(delivery: NotificationDelivery) -> httpx.Response:
    body = webhook_body(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "vpnmerger-monitoring"}
    secret = settings.MONITORING["WEBHOOK_SECRET"]
    if secret:
        headers["X-Vpnmerger-Signature"] = webhook_signature(body, secret)
    return httpx.post(delivery.target, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
