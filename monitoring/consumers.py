"""WebSocket consumers for health checks and alerts."""

from __future__ import annotations

from vpnmerger.consumers import TopicConsumer


class HealthConsumer(TopicConsumer):
    """Health check results and system snapshots, forwarded as they are published."""

    topic = "health"


class AlertsConsumer(TopicConsumer):
    """Raised, acknowledged and resolved alerts, forwarded as they are published."""

    topic = "alerts"
