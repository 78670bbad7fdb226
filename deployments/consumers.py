"""WebSocket consumer for deployment progress."""

from __future__ import annotations

from vpnmerger.consumers import TopicConsumer


class DeploymentsConsumer(TopicConsumer):
    """Deployment steps and results, forwarded as they are published."""

    topic = "deployments"
