"""Live events for the dashboard: topic group names and publishing after commit.

Every app publishes through `publish`, and every consumer joins groups named by `group_name`, so
the names live in one place. Publishing waits for the surrounding transaction to commit, because
a browser that reacts to an event by fetching the row must find it.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

TOPICS = ("runs", "health", "alerts", "deployments")


def group_name(topic: str) -> str:
    """Return the channel-layer group of a topic; raise ValueError for an unknown topic."""
    if topic not in TOPICS:
        raise ValueError(f"unknown event topic {topic!r}: expected one of {', '.join(TOPICS)}")
    return f"vpnmerger.{topic}"


def publish(topic: str, event: str, payload: dict[str, Any]) -> None:
    """Send `{"type": event, **payload}` to the topic's group once the transaction commits.

    `event` uses dots ("run.progress"); Channels maps it to the consumer method `run_progress`.
    A failing channel layer is logged and never breaks the work that published.
    """
    group = group_name(topic)
    message = {"type": event, **payload}

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.warning("could not publish %s to %s", event, group, exc_info=True)

    transaction.on_commit(send)
