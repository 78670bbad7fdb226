"""The base of every dashboard WebSocket consumer: one consumer per event topic.

A consumer closes anonymous sockets, joins its topic's group (named by `events.group_name`) and
forwards each event to the browser as JSON with the event type under "event".
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import events
from .access import is_operator

# Close code for a socket without a logged-in user; 4000-4999 are free for applications (RFC 6455).
CLOSE_UNAUTHENTICATED = 4401


class TopicConsumer(AsyncJsonWebsocketConsumer):
    """Sends the events of one topic to a logged-in staff user's browser; subclasses set `topic`."""

    topic = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not is_operator(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        events.remember_server_loop(asyncio.get_running_loop())
        self.group = events.group_name(self.topic)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The sockets only push; a ping lets the browser check that the connection is alive.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong"})

    async def forward(self, message: dict[str, Any]) -> None:
        payload = {key: value for key, value in message.items() if key != "type"}
        await self.send_json({"event": message["type"], **payload})

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Forward events of this topic that have no handler of their own, such as new alert kinds."""
        message_type = message.get("type", "")
        handler_name = message_type.replace(".", "_")
        if message_type.startswith("websocket.") or hasattr(self, handler_name):
            await super().dispatch(message)
        else:
            await self.forward(message)
