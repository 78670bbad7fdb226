"""Read-side queries for the dashboard: node counts, the latency histogram, runs and source health.

Every figure is an aggregate computed by the database, so the dashboard costs the same handful of
queries with a hundred nodes or a hundred thousand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from .models import MergeRun, Node, Source

# Upper bounds (ms) of the latency histogram buckets; the last bucket takes everything slower.
LATENCY_BUCKETS = (50, 100, 200, 400, 800, 1600)
RECENT_RUNS = 10
# A source whose last good fetch is older than this is shown as stale.
STALE_AFTER = timedelta(hours=24)


def node_summary() -> dict[str, Any]:
    """Return total and alive node counts, counts per protocol and the latency histogram."""
    bounds = [0, *LATENCY_BUCKETS]
    buckets = {
        f"b{index}": Count("id", filter=Q(latency_ms__gte=low, latency_ms__lt=high))
        for index, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False))
    }
    buckets[f"b{len(LATENCY_BUCKETS)}"] = Count("id", filter=Q(latency_ms__gte=LATENCY_BUCKETS[-1]))
    totals = Node.objects.aggregate(
        total=Count("id"),
        alive_count=Count("id", filter=Q(alive=True)),
        dead_count=Count("id", filter=Q(alive=False)),
        **buckets,
    )
    labels = [f"<{LATENCY_BUCKETS[0]}"]
    labels += [f"{low}-{high}" for low, high in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:], strict=False)]
    labels.append(f">={LATENCY_BUCKETS[-1]}")
    per_protocol = list(
        Node.objects.order_by()
        .values("protocol")
        .annotate(total=Count("id"), alive_count=Count("id", filter=Q(alive=True)))
    )
    per_protocol = [
        {"protocol": row["protocol"], "total": row["total"], "alive": row["alive_count"]}
        for row in per_protocol
    ]
    per_protocol.sort(key=lambda row: (-row["total"], row["protocol"]))
    return {
        "total": totals["total"],
        "alive": totals["alive_count"],
        "dead": totals["dead_count"],
        "per_protocol": per_protocol,
        "latency": {"labels": labels, "counts": [totals[f"b{index}"] for index in range(len(labels))]},
    }


def recent_runs(limit: int = RECENT_RUNS) -> list[MergeRun]:
    # The JSON report fields can be large, so only the columns the table shows are read.
    fields = (
        "id", "status", "trigger", "created_at", "started_at", "finished_at", "stage", "progress",
        "sources_ok", "sources_failed", "links_seen", "unique", "duplicates", "invalid", "error",
    )  # fmt: skip
    return list(MergeRun.objects.only(*fields).order_by("-created_at", "-id")[:limit])


def source_health(now: datetime | None = None) -> list[dict[str, Any]]:
    """Return one row per source with its last status, node count and whether it is stale or failing."""
    now = now or timezone.now()
    rows = []
    for source in Source.objects.order_by("name"):
        failing = source.consecutive_failures > 0
        stale = source.enabled and (source.last_ok_at is None or now - source.last_ok_at > STALE_AFTER)
        if not source.enabled:
            state = "disabled"
        elif source.last_fetched_at is None:
            state = "never fetched"
        elif failing:
            state = "failing"
        elif stale:
            state = "stale"
        else:
            state = "ok"
        rows.append(
            {
                "id": source.pk,
                "name": source.name,
                "enabled": source.enabled,
                "state": state,
                "failing": failing,
                "stale": stale,
                "nodes": source.last_node_count,
                "last_fetched_at": source.last_fetched_at,
                "last_ok_at": source.last_ok_at,
                "last_error": source.last_error,
                "consecutive_failures": source.consecutive_failures,
            }
        )
    return rows
