"""WebSocket consumer for merge runs: progress, status changes and log lines."""

from __future__ import annotations

from typing import Any

from vpnmerger.consumers import TopicConsumer


class RunsConsumer(TopicConsumer):
    topic = "runs"

    async def run_progress(self, message: dict[str, Any]) -> None:
        await self.forward(message)

    async def run_status(self, message: dict[str, Any]) -> None:
        await self.forward(message)

    async def run_log(self, message: dict[str, Any]) -> None:
        await self.forward(message)
