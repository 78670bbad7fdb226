"""The monitoring app's service functions, for the web UI, the API, tasks and commands.

Entry points call these and present the result; the logic lives in the modules they re-export.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from monitoring import trends
from monitoring.alerts import acknowledge_alert, alert_payload, open_alerts
from monitoring.checks import overall_status, registered_checks, run_checks
from monitoring.recommendations import Recommendation, recommendations
from monitoring.snapshots import (
    cleanup_snapshots,
    latest_snapshot,
    snapshot_payload,
    take_snapshot,
    trend_series,
)

__all__ = [
    "Recommendation",
    "acknowledge_alert",
    "alert_payload",
    "cleanup_snapshots",
    "latest_snapshot",
    "metric_trend",
    "open_alerts",
    "overall_status",
    "recommendations",
    "registered_checks",
    "run_checks",
    "snapshot_payload",
    "take_snapshot",
    "trend_series",
]


def metric_trend(name: str, *, hours: float = 24, now: datetime | None = None) -> dict[str, Any]:
    """Return the series of check `name` over `hours` with its slope per hour, EWMA and median.

    {"name", "count", "latest", "slope_per_hour", "ewma", "median", "points": [[iso time, value], ...]}
    """
    now = now or timezone.now()
    series = trend_series(name, hours=hours, now=now)
    summary = trends.summarize(name, [(moment.timestamp(), value) for moment, value in series])
    return {**summary.as_dict(), "points": [[moment.isoformat(), value] for moment, value in series]}
