"""Celery tasks of the monitoring app. Each one calls a single service function."""

from __future__ import annotations

from celery import shared_task

from monitoring import notify, snapshots


@shared_task(name="monitoring.tasks.take_health_snapshot", ignore_result=True)
def take_health_snapshot() -> int:
    """Run every health check, store a snapshot, update alerts and run recovery; return the snapshot id."""
    return snapshots.take_snapshot().pk


@shared_task(name="monitoring.tasks.cleanup_snapshots", ignore_result=True)
def cleanup_snapshots() -> dict[str, int]:
    """Thin snapshots older than MONITORING["THIN_AFTER"] and delete those past the retention period."""
    return snapshots.cleanup_snapshots()


@shared_task(name="monitoring.tasks.deliver_notification", ignore_result=True)
def deliver_notification(delivery_id: int) -> str:
    """Send one recorded alert notification; return its outcome."""
    return notify.deliver(delivery_id).outcome
