"""Celery tasks of the merger app. Each takes ids, calls one function of merger.orchestration, and is
safe to run twice: a run that is no longer pending or running is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import orchestration

logger = logging.getLogger(__name__)

# Errors worth another attempt: the database or the broker went away for a moment. Errors of a
# source itself (HTTP failures, undecodable bodies) are recorded on its result and never retried
# here, because the fetcher already retries what a retry can fix.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 3,
}
FETCH_TIME_LIMIT = settings.VPNMERGER["FETCH_TASK_TIME_LIMIT"]


def fan_out_enabled() -> bool:
    """Whether merges fan out over workers: needs a real broker and a result backend for the chord."""
    from vpnmerger.celery import app

    return not app.conf.task_always_eager and bool(app.conf.result_backend)


@shared_task(bind=True, name="merger.tasks.merge_run", **RETRY_OPTIONS)
def merge_run(self, run_id: int, probe: bool = True) -> None:
    orchestration.execute_run(
        run_id,
        task_id=self.request.id or "",
        worker=self.request.hostname or "",
        fan_out=fan_out_enabled(),
        probe=probe,
    )


@shared_task(
    name="merger.tasks.fetch_source",
    soft_time_limit=FETCH_TIME_LIMIT,
    time_limit=FETCH_TIME_LIMIT + 30,
    **RETRY_OPTIONS,
)
def fetch_source(run_id: int, source_id: int) -> dict[str, Any]:
    return orchestration.fetch_source_for_run(run_id, source_id)


@shared_task(name="merger.tasks.finish_merge", **RETRY_OPTIONS)
def finish_merge(run_id: int, source_ids: list[int], probe: bool = True) -> None:
    orchestration.finish_run(run_id, source_ids, probe)


@shared_task(name="merger.tasks.probe_batch", **RETRY_OPTIONS)
def probe_batch(run_id: int, start: int, end: int) -> dict[str, Any]:
    return orchestration.probe_nodes_for_run(run_id, start, end)


@shared_task(name="merger.tasks.persist_merge", **RETRY_OPTIONS)
def persist_merge(run_id: int, source_ids: list[int], batch_starts: list[int]) -> None:
    orchestration.persist_run(run_id, source_ids, batch_starts)


@shared_task(name="merger.tasks.scheduled_merge")
def scheduled_merge() -> int | None:
    """Request a merge of every enabled source; return the id of the new or already active run."""
    try:
        request = orchestration.request_merge(trigger="schedule")
    except orchestration.NoEnabledSources:
        logger.info("scheduled merge skipped: no source is enabled")
        return None
    if not request.created:
        logger.info("scheduled merge skipped: merge run %s is already active", request.run.pk)
    return request.run.pk


@shared_task(name="merger.tasks.recover_stale_runs")
def recover_stale_runs() -> list[int]:
    return orchestration.recover_stale_runs()


@shared_task(name="merger.tasks.cleanup_old_runs")
def cleanup_old_runs() -> int:
    return orchestration.cleanup_old_runs()
