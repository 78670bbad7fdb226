"""Taking, reading, thinning and deleting health snapshots."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring import alerts, recovery
from monitoring.checks import CheckResult, overall_status, run_checks
from monitoring.models import CheckSample, HealthSnapshot
from vpnmerger import events

logger = logging.getLogger(__name__)


def take_snapshot(*, now: datetime | None = None, results: list[CheckResult] | None = None) -> HealthSnapshot:
    """Run every check, store the results, update alerts, run recovery and publish health.snapshot.

    `results` replaces running the checks (tests and callers that already ran them).
    """
    now = now or timezone.now()
    started = time.perf_counter()
    if results is None:
        results = run_checks(now=now)
    elapsed = (time.perf_counter() - started) * 1000
    with transaction.atomic():
        snapshot = HealthSnapshot.objects.create(
            taken_at=now, status=overall_status(results), duration_ms=elapsed
        )
        CheckSample.objects.bulk_create(
            CheckSample(
                snapshot=snapshot,
                taken_at=now,
                name=result.name,
                status=result.status,
                value=result.value,
                message=result.message[:500],
            )
            for result in results
        )
        alerts.evaluate(results, now=now)
        events.publish("health", "health.snapshot", {"snapshot": snapshot_payload(snapshot, results)})
    # Recovery runs after the snapshot is stored, each action in its own transaction, so a failing
    # action cannot lose the snapshot.
    recovery.run_recovery(results, now=now)
    return snapshot


def snapshot_payload(snapshot: HealthSnapshot, results: list[CheckResult] | None = None) -> dict[str, Any]:
    """Return a JSON-safe description of the snapshot and its checks for events and the dashboard."""
    if results is not None:
        checks = [result.as_dict() for result in results]
    else:
        checks = [
            {"name": sample.name, "status": sample.status, "value": sample.value, "message": sample.message}
            for sample in snapshot.samples.all()
        ]
    return {
        "id": snapshot.pk,
        "taken_at": snapshot.taken_at.isoformat(),
        "status": snapshot.status,
        "duration_ms": round(snapshot.duration_ms, 2),
        "checks": checks,
    }


def latest_snapshot() -> HealthSnapshot | None:
    """Return the newest snapshot with its samples prefetched, or None before the first one."""
    return HealthSnapshot.objects.prefetch_related("samples").order_by("-taken_at").first()


def trend_series(
    name: str, *, hours: float = 24, now: datetime | None = None
) -> list[tuple[datetime, float]]:
    """Return (time, value) of check `name` over the last `hours`, oldest first, skipping empty values."""
    now = now or timezone.now()
    rows = (
        CheckSample.objects.filter(name=name, taken_at__gt=now - timedelta(hours=hours), taken_at__lte=now)
        .exclude(value__isnull=True)
        .order_by("taken_at")
        .values_list("taken_at", "value")
    )
    return list(rows)


def thin_snapshots(*, now: datetime | None = None) -> int:
    """Keep one snapshot per hour among those older than THIN_AFTER; return how many were deleted.

    The first snapshot of each hour is kept. Only the span between RETENTION_DAYS and THIN_AFTER is
    read, so the work stays bounded by one retention period.
    """
    now = now or timezone.now()
    config = settings.MONITORING
    thin_before = now - timedelta(seconds=config["THIN_AFTER"])
    retention_start = now - timedelta(days=config["RETENTION_DAYS"])
    rows = (
        HealthSnapshot.objects.filter(taken_at__lt=thin_before, taken_at__gte=retention_start)
        .order_by("taken_at")
        .values_list("pk", "taken_at")
    )
    seen_hours: set[datetime] = set()
    doomed: list[int] = []
    for pk, taken_at in rows.iterator(chunk_size=2000):
        hour = taken_at.replace(minute=0, second=0, microsecond=0)
        if hour in seen_hours:
            doomed.append(pk)
        else:
            seen_hours.add(hour)
    deleted = 0
    # Deleting in batches keeps the IN list under SQLite's variable limit.
    for start in range(0, len(doomed), 500):
        deleted += (
            HealthSnapshot.objects.filter(pk__in=doomed[start : start + 500])
            .delete()[1]
            .get("monitoring.HealthSnapshot", 0)
        )
    return deleted


def cleanup_snapshots(*, now: datetime | None = None) -> dict[str, int]:
    """Delete snapshots older than RETENTION_DAYS and thin the older ones; return the counts."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MONITORING["RETENTION_DAYS"])
    expired = (
        HealthSnapshot.objects.filter(taken_at__lt=cutoff).delete()[1].get("monitoring.HealthSnapshot", 0)
    )
    thinned = thin_snapshots(now=now)
    if expired or thinned:
        logger.info("snapshot clean-up: %d expired, %d thinned", expired, thinned)
    return {"expired": expired, "thinned": thinned}
