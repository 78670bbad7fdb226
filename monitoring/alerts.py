"""Alerts: open when a threshold is crossed, update while it lasts, resolve when it clears.

Each alert has a key (check:NAME for checks); the database allows one unresolved alert per key.
Changes are published on the "alerts" topic as "alert.changed" with the alert and the change
(opened, escalated, deescalated, resolved, acknowledged), and notifications are queued for
opened, escalated and resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from monitoring import notify
from monitoring.checks import CRITICAL, OK, SKIPPED, WARNING, CheckResult
from monitoring.models import Alert, Threshold
from vpnmerger import events

logger = logging.getLogger(__name__)

SEVERITY_RANK = {Alert.Severity.INFO: 0, Alert.Severity.WARNING: 1, Alert.Severity.CRITICAL: 2}


def alert_payload(alert: Alert) -> dict[str, Any]:
    """Return a JSON-safe description of the alert for events, webhooks and the dashboard."""
    return {
        "id": alert.pk,
        "key": alert.key,
        "check": alert.check_name,
        "severity": alert.severity,
        "title": alert.title,
        "message": alert.message,
        "value": alert.value,
        "opened_at": alert.opened_at.isoformat(),
        "updated_at": alert.updated_at.isoformat(),
        "occurrences": alert.occurrences,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
    }


def _changed(alert: Alert, change: str) -> None:
    events.publish("alerts", "alert.changed", {"change": change, "alert": alert_payload(alert)})
    if change in ("opened", "escalated", "resolved"):
        notify.queue_notifications(alert, change)


def raise_alert(
    key: str,
    *,
    severity: str,
    title: str,
    message: str = "",
    value: float | None = None,
    check_name: str = "",
    now: datetime | None = None,
) -> tuple[Alert, str]:
    """Open the alert for `key`, or update the open one; return it and the change made.

    The change is "opened", "escalated", "deescalated" or "updated" (same severity, new value).
    """
    now = now or timezone.now()
    alert = Alert.objects.filter(key=key, resolved_at__isnull=True).first()
    if alert is None:
        try:
            # The savepoint lets a concurrent snapshot that opened the same alert first win cleanly.
            with transaction.atomic():
                alert = Alert.objects.create(
                    key=key,
                    check_name=check_name,
                    severity=severity,
                    title=title[:200],
                    message=message[:500],
                    value=value,
                    opened_at=now,
                    updated_at=now,
                )
        except IntegrityError:
            alert = Alert.objects.get(key=key, resolved_at__isnull=True)
        else:
            logger.info("alert %s opened (%s): %s", key, severity, message)
            _changed(alert, "opened")
            return alert, "opened"

    previous = alert.severity
    alert.severity = severity
    alert.title = title[:200]
    alert.message = message[:500]
    alert.value = value
    alert.updated_at = now
    alert.occurrences += 1
    alert.save(update_fields=["severity", "title", "message", "value", "updated_at", "occurrences"])
    if SEVERITY_RANK[severity] > SEVERITY_RANK[previous]:
        change = "escalated"
    elif SEVERITY_RANK[severity] < SEVERITY_RANK[previous]:
        change = "deescalated"
    else:
        return alert, "updated"
    _changed(alert, change)
    return alert, change


def resolve(key: str, *, now: datetime | None = None, message: str = "") -> Alert | None:
    """Resolve the open alert for `key`, if any, and return it."""
    alert = Alert.objects.filter(key=key, resolved_at__isnull=True).first()
    if alert is None:
        return None
    alert.resolved_at = now or timezone.now()
    if message:
        alert.message = message[:500]
    alert.save(update_fields=["resolved_at", "message"])
    logger.info("alert %s resolved", key)
    _changed(alert, "resolved")
    return alert


def evaluate(results: Iterable[CheckResult], *, now: datetime | None = None) -> list[tuple[Alert, str]]:
    """Open, update or resolve the alert of every check in `results`; return the (alert, change) pairs."""
    now = now or timezone.now()
    thresholds = {row.check_name: row for row in Threshold.objects.all()}
    changes: list[tuple[Alert, str]] = []
    for result in results:
        key = f"check:{result.name}"
        threshold = thresholds.get(result.name)
        alerting = threshold is None or threshold.alerts_enabled
        if result.status in (WARNING, CRITICAL) and alerting:
            severity = (
                CRITICAL
                if result.status == CRITICAL
                else (threshold.warning_severity if threshold else WARNING)
            )
            changes.append(
                raise_alert(
                    key,
                    severity=severity,
                    title=f"{result.label or result.name}: {result.status}",
                    message=result.message,
                    value=result.value,
                    check_name=result.name,
                    now=now,
                )
            )
        elif result.status in (OK, SKIPPED) or not alerting:
            resolved = resolve(key, now=now, message=result.message)
            if resolved is not None:
                changes.append((resolved, "resolved"))
    return changes


def open_alerts() -> QuerySet[Alert]:
    """Return unresolved alerts, most severe first, then newest."""
    alerts = Alert.objects.filter(resolved_at__isnull=True).select_related("acknowledged_by")
    return sorted_by_severity(alerts)


def sorted_by_severity(alerts: QuerySet[Alert]) -> QuerySet[Alert]:
    from django.db.models import Case, IntegerField, Value, When

    rank = Case(
        *(When(severity=severity, then=Value(-number)) for severity, number in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )
    return alerts.annotate(severity_rank=rank).order_by("severity_rank", "-opened_at")


def acknowledge_alert(alert_id: int, user: Any, *, now: datetime | None = None) -> Alert:
    """Mark an alert acknowledged by `user`; raise Alert.DoesNotExist for an unknown id.

    Acknowledging again keeps the first acknowledgement. A resolved alert can be acknowledged too.
    """
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.acknowledged_at is not None:
            return alert
        alert.acknowledged_at = now or timezone.now()
        alert.acknowledged_by = user if getattr(user, "is_authenticated", False) else None
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
        logger.info("alert %s acknowledged by user %s", alert.pk, getattr(user, "pk", None))
        _changed(alert, "acknowledged")
    return alert
