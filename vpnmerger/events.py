"""Live events for the dashboard: topic group names and publishing after commit.

Every app publishes through `publish`, and every consumer joins groups named by `group_name`, so
the names live in one place. Publishing waits for the surrounding transaction to commit, because
a browser that reacts to an event by fetching the row must find it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

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

    transaction.on_commit(lambda: send_now(group, message))


# The event loop of the ASGI server in this process, recorded by the first consumer that connects.
# Sending through it is the only thread-safe way to reach the in-memory layer's queues from a
# worker thread; with no server loop here (a Celery worker, a command) nobody in this process
# listens, and the Redis layer needs no particular loop.
_server_loop: asyncio.AbstractEventLoop | None = None
_sender: _SenderThread | None = None
_sender_lock = threading.Lock()


def remember_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def send_now(group: str, message: dict[str, Any]) -> None:
    """Send a message to a group at once, from sync code, any thread or inside a running event loop.

    `async_to_sync` cannot be called from a thread whose event loop is running (the fetcher's), and
    from a worker thread it would touch the in-memory layer from a foreign loop, so the send is
    scheduled on the server loop when one runs in this process, else on one sender thread.
    A failing channel layer is logged and never breaks the work that published.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    if loop is not None and loop.is_running():
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            loop.create_task(_send_logged(layer, group, message))
        else:
            asyncio.run_coroutine_threadsafe(_send_logged(layer, group, message), loop)
        return
    _sender_thread().submit(_send_logged(layer, group, message))


async def _send_logged(layer: Any, group: str, message: dict[str, Any]) -> None:
    try:
        await layer.group_send(group, message)
    except Exception:
        logger.warning("could not publish %s to %s", message.get("type"), group, exc_info=True)


class _SenderThread(threading.Thread):
    """A daemon thread with its own event loop, so sends keep their order and reuse connections."""

    def __init__(self) -> None:
        super().__init__(name="vpnmerger-events", daemon=True)
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop)


def _sender_thread() -> _SenderThread:
    global _sender
    with _sender_lock:
        if _sender is None or not _sender.is_alive():
            _sender = _SenderThread()
            _sender.start()
        return _sender
