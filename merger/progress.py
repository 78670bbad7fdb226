"""Live run events for the dashboard: throttled progress and status changes of merge runs.

The merge service calls these from synchronous code and, during the fetch stage, from inside the
fetcher's event loop, so every send goes through `events.send_now`, which works in both places.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from django.db import transaction
from django.utils import timezone

from vpnmerger import events

from .models import MergeRun

# At most this many progress events per second and run; stage changes and the last step of a
# stage are always sent so the browser never misses where a run is.
EVENTS_PER_SECOND = 5.0
# Log lines kept per run for the log tail on the Operations page; older lines are dropped.
# NOTE: the lines live in this process, so a run executed by a Celery worker elsewhere shows its
# lines only to browsers connected while it runs (over the Redis layer), not in the polled log.
LOG_LINES = 300
_logs: dict[int, deque[str]] = {}
_logs_lock = threading.Lock()


def run_payload(run: MergeRun) -> dict[str, Any]:
    """Return the fields of a run that the dashboard shows, as JSON-safe values."""
    return {
        "run_id": run.pk,
        "status": run.status,
        "stage": run.stage,
        "progress": run.progress,
        "trigger": run.trigger,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "sources_ok": run.sources_ok,
        "sources_failed": run.sources_failed,
        "links_seen": run.links_seen,
        "invalid": run.invalid,
        "duplicates": run.duplicates,
        "unique": run.unique,
        "error": run.error[:500],
    }


class RunEventPublisher:
    """Sends `run.progress` events for one run at a bounded rate, with the counts of each stage."""

    def __init__(self, run_id: int, events_per_second: float = EVENTS_PER_SECOND) -> None:
        self.run_id = run_id
        self.interval = 1.0 / events_per_second
        self.sent_at = 0.0
        self.stage = ""
        # Per stage, the last (done, total) seen; the browser draws one counter per stage from it.
        self.stages: dict[str, list[int]] = {}

    def __call__(self, stage: str, done: int, total: int, percent: float) -> None:
        self.stages[stage] = [done, total]
        now = time.monotonic()
        changed_stage = stage != self.stage
        self.stage = stage
        if changed_stage:
            append_log(self.run_id, f"stage {stage} started")
        if stage == "fetch" and total:
            append_log(self.run_id, f"fetched {done} of {total} inputs")
        if not changed_stage and done < total and now - self.sent_at < self.interval:
            return
        self.sent_at = now
        payload = {
            "run_id": self.run_id,
            "stage": stage,
            "done": done,
            "total": total,
            "progress": round(percent, 1),
            "stages": {name: list(counts) for name, counts in self.stages.items()},
            "sent_at": time.time(),
        }
        events.send_now(events.group_name("runs"), {"type": "run.progress", **payload})


def publish_run_status(run: MergeRun) -> None:
    """Send `run.status` with the run's fields once the surrounding transaction commits."""
    payload = run_payload(run)
    payload["sent_at"] = time.time()
    group = events.group_name("runs")
    transaction.on_commit(lambda: events.send_now(group, {"type": "run.status", **payload}))


def append_log(run_id: int, line: str) -> None:
    """Keep a line of the run's log and send it as `run.log` to the browsers watching the run."""
    stamped = f"{timezone.now():%H:%M:%S} {line}"
    with _logs_lock:
        _logs.setdefault(run_id, deque(maxlen=LOG_LINES)).append(stamped)
    events.send_now(events.group_name("runs"), {"type": "run.log", "run_id": run_id, "line": stamped})


def log_lines(run_id: int) -> list[str]:
    with _logs_lock:
        return list(_logs.get(run_id, ()))
