"""Prometheus metrics read from the database at scrape time.

Check statuses come from the latest stored snapshot rather than running the checks per scrape,
because a scrape every few seconds must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from merger.models import MergeRun, Node, Source
from monitoring.models import Alert
from monitoring.snapshots import latest_snapshot

# Numeric encoding of a check status for vpnmerger_check_status.
STATUS_VALUE = {"skipped": -1, "ok": 0, "warning": 1, "critical": 2}


class VpnmergerCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        yield from self._merge()
        yield from self._sources()
        yield from self._health()

    def _nodes(self) -> Iterator[Metric]:
        per_protocol = GaugeMetricFamily(
            "vpnmerger_nodes", "Unique nodes stored, per protocol.", labels=["protocol"]
        )
        for row in Node.objects.values("protocol").annotate(count=Count("pk")).order_by("protocol"):
            per_protocol.add_metric([row["protocol"]], row["count"])
        yield per_protocol
        yield GaugeMetricFamily(
            "vpnmerger_nodes_alive",
            "Nodes whose latest probe passed.",
            value=Node.objects.filter(alive=True).count(),
        )

    def _merge(self) -> Iterator[Metric]:
        last = (
            MergeRun.objects.filter(status=MergeRun.Status.SUCCEEDED, finished_at__isnull=False)
            .order_by("-finished_at")
            .first()
        )
        if last is None:
            return
        yield GaugeMetricFamily(
            "vpnmerger_last_merge_duration_seconds",
            "Duration of the last succeeded merge.",
            value=last.duration or 0.0,
        )
        yield GaugeMetricFamily(
            "vpnmerger_last_merge_age_seconds",
            "Seconds since the last succeeded merge finished.",
            value=(timezone.now() - last.finished_at).total_seconds(),
        )
        yield GaugeMetricFamily(
            "vpnmerger_last_merge_unique_nodes",
            "Unique nodes in the last succeeded merge.",
            value=last.unique,
        )

    def _sources(self) -> Iterator[Metric]:
        failures = GaugeMetricFamily(
            "vpnmerger_source_consecutive_failures",
            "Fetch failures in a row, per source.",
            labels=["source", "enabled"],
        )
        for name, count, enabled in Source.objects.values_list("name", "consecutive_failures", "enabled"):
            failures.add_metric([name, str(enabled).lower()], count)
        yield failures

    def _health(self) -> Iterator[Metric]:
        snapshot = latest_snapshot()
        if snapshot is not None:
            status = GaugeMetricFamily(
                "vpnmerger_check_status",
                "Latest status per health check: -1 skipped, 0 ok, 1 warning, 2 critical.",
                labels=["check"],
            )
            value = GaugeMetricFamily(
                "vpnmerger_check_value", "Latest measured value per health check.", labels=["check"]
            )
            for sample in snapshot.samples.all():
                status.add_metric([sample.name], STATUS_VALUE.get(sample.status, 0))
                if sample.value is not None:
                    value.add_metric([sample.name], sample.value)
            yield status
            yield value
            yield GaugeMetricFamily(
                "vpnmerger_health_snapshot_age_seconds",
                "Seconds since the latest health snapshot.",
                value=(timezone.now() - snapshot.taken_at).total_seconds(),
            )
        alerts = GaugeMetricFamily(
            "vpnmerger_open_alerts", "Unresolved alerts per severity.", labels=["severity"]
        )
        counts = dict(
            Alert.objects.filter(resolved_at__isnull=True)
            .values_list("severity")
            .annotate(count=Count("pk"))
            .order_by()
        )
        for severity in Alert.Severity.values:
            alerts.add_metric([severity], counts.get(severity, 0))
        yield alerts


def render_metrics() -> bytes:
    """Return every metric in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VpnmergerCollector())
    return generate_latest(registry)
