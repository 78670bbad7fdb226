"""The one registry of periodic jobs and their default schedules.

The data migration `merger/migrations/*_default_schedules.py` creates a django-celery-beat
PeriodicTask for each job, and beat's DatabaseScheduler runs them, so every schedule can be
changed or switched off in the admin afterwards. Jobs name their task by string only: this module
imports no app, and each job runs as its own task, so one failing job never stops another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """A periodic task with its default schedule: every `every_seconds`, or at a crontab time."""

    name: str
    task: str
    description: str
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (not self.crontab):
            raise ValueError(f"periodic job {self.name!r} needs exactly one of every_seconds and crontab")


JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        name="Merge every enabled source",
        task="merger.tasks.scheduled_merge",
        description="Fetch, de-duplicate and export every enabled source; skipped while a merge runs.",
        every_seconds=6 * 3600,
    ),
    PeriodicJob(
        name="Health snapshot",
        task="monitoring.tasks.take_health_snapshot",
        description="Record the health of the service for the dashboard and alerts.",
        every_seconds=60,
    ),
    PeriodicJob(
        name="Recover stale merge runs",
        task="merger.tasks.recover_stale_runs",
        description="Mark failed the merges whose worker stopped sending heartbeats.",
        every_seconds=5 * 60,
    ),
    PeriodicJob(
        name="Clean up old merge runs",
        task="merger.tasks.cleanup_old_runs",
        description="Delete old merge runs and their export folders, keeping the current export.",
        crontab={"minute": "30", "hour": "3"},
    ),
    PeriodicJob(
        name="Clean up old health snapshots",
        task="monitoring.tasks.cleanup_snapshots",
        description="Delete health snapshots past their retention.",
        crontab={"minute": "45", "hour": "3"},
    ),
)


def install_default_schedules(
    periodic_task_model: Any, interval_model: Any, crontab_model: Any, jobs: tuple[PeriodicJob, ...] = JOBS
) -> int:
    """Create a PeriodicTask for every job that has none yet; return how many were created.

    Takes the models as arguments so that a migration can pass its historical models. A job
    whose PeriodicTask exists is left alone, which keeps the changes made in the admin.
    """
    created = 0
    for job in jobs:
        if periodic_task_model.objects.filter(name=job.name).exists():
            continue
        schedule: dict[str, Any] = {}
        if job.every_seconds is not None:
            every, period = _interval_in_largest_unit(job.every_seconds)
            schedule["interval"], _ = interval_model.objects.get_or_create(every=every, period=period)
        else:
            values = {
                "minute": "*",
                "hour": "*",
                "day_of_week": "*",
                "day_of_month": "*",
                "month_of_year": "*",
            }
            values.update(job.crontab)
            schedule["crontab"], _ = crontab_model.objects.get_or_create(**values, timezone="UTC")
        periodic_task_model.objects.create(
            name=job.name,
            task=job.task,
            description=job.description,
            enabled=True,
            args=json.dumps([]),
            kwargs=json.dumps({}),
            **schedule,
        )
        created += 1
    return created


def _interval_in_largest_unit(seconds: int) -> tuple[int, str]:
    """Express an interval in the largest whole unit, so the admin shows "every 6 hours"."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "seconds"
