"""Run one deployment step: time it, store its outcome on the Deployment and publish progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from vpnmerger import events

from .models import Deployment

logger = logging.getLogger(__name__)

OK = "ok"
WARNING = "warning"
SKIPPED = "skipped"
FAILED = "failed"
RUNNING = "running"

# Listener for progress: (deployment, step dict). The deploy command prints each finished step.
StepListener = Callable[[Deployment, dict[str, Any]], None]


@dataclass(slots=True)
class StepOutcome:
    """The result of a step: status ok, warning, skipped or failed, with human-readable output."""

    status: str
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAILED


class StepRunner:
    """Runs the steps of one deployment and keeps its record and the live events current."""

    def __init__(
        self, deployment: Deployment, listener: StepListener | None = None, total_steps: int = 0
    ) -> None:
        self.deployment = deployment
        self.listener = listener
        self.total_steps = total_steps

    def run(self, phase: str, name: str, action: Callable[[], StepOutcome]) -> StepOutcome:
        """Run `action` as the step phase.name; an exception becomes a failed outcome, never escapes."""
        step: dict[str, Any] = {
            "phase": phase,
            "name": name,
            "status": RUNNING,
            "started_at": timezone.now().isoformat(),
            "finished_at": None,
            "duration_ms": None,
            "output": "",
        }
        self.deployment.steps.append(step)
        self.save()
        self.publish(step)

        started = time.monotonic()
        try:
            outcome = action()
        except Exception as error:
            logger.exception("deployment %s: step %s.%s failed", self.deployment.pk, phase, name)
            outcome = StepOutcome(FAILED, f"{type(error).__name__}: {error}")

        step["status"] = outcome.status
        step["output"] = outcome.output
        step["finished_at"] = timezone.now().isoformat()
        step["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        self.save()
        self.publish(step)
        if self.listener is not None:
            self.listener(self.deployment, step)
        return outcome

    def save(self) -> None:
        # Saving by primary key also re-creates the row after a restore removed it.
        self.deployment.save()

    def publish(self, step: dict[str, Any] | None = None) -> None:
        deployment = self.deployment
        done = sum(1 for item in deployment.steps if item["status"] != RUNNING)
        payload: dict[str, Any] = {
            "deployment_id": deployment.pk,
            "kind": deployment.kind,
            "version": deployment.version,
            "dry_run": deployment.dry_run,
            "status": deployment.status,
            "steps_done": done,
            "steps_total": max(self.total_steps, done),
        }
        if step is not None:
            payload["step"] = {key: step[key] for key in ("phase", "name", "status", "duration_ms", "output")}
        events.publish("deployments", "deployment.progress", payload)
