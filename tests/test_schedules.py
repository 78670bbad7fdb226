"""Periodic jobs: the registry, the default schedules its data migration creates, and beat firing them."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from merger.models import MergeRun, Source
from tests.conftest import SAMPLES_DIR
from tests.test_celery import (  # noqa: F401 - worker_factory and isolated_dirs are fixtures
    BROKER_URL,
    broker_configured,
    isolated_dirs,
    run_status,
    wait_for,
    worker_factory,
)
from vpnmerger.celery import app as celery_app
from vpnmerger.periodic import JOBS, PeriodicJob, install_default_schedules

MERGE_JOB = next(job for job in JOBS if job.task == "merger.tasks.scheduled_merge")


def create_default_schedules() -> None:
    migration = importlib.import_module("merger.migrations.0004_default_schedules")
    migration.create_default_schedules(apps, None)


def test_registry_has_required_jobs():
    tasks = {job.task: job for job in JOBS}

    assert tasks["merger.tasks.scheduled_merge"].every_seconds == 6 * 3600
    assert tasks["monitoring.tasks.take_health_snapshot"].every_seconds == 60
    assert tasks["merger.tasks.cleanup_old_runs"].crontab == {"minute": "30", "hour": "3"}
    assert "monitoring.tasks.cleanup_snapshots" in tasks
    assert len({job.name for job in JOBS}) == len(JOBS)


def test_job_needs_exactly_one_schedule():
    with pytest.raises(ValueError, match="exactly one of every_seconds and crontab"):
        PeriodicJob(name="both", task="x", description="", every_seconds=60, crontab={"minute": "1"})
    with pytest.raises(ValueError, match="exactly one of every_seconds and crontab"):
        PeriodicJob(name="neither", task="x", description="")


@pytest.mark.django_db
def test_migration_creates_every_default_schedule():
    PeriodicTask.objects.all().delete()

    create_default_schedules()

    for job in JOBS:
        task = PeriodicTask.objects.get(name=job.name)
        assert task.task == job.task
        assert task.enabled
        assert json.loads(task.args) == []
        if job.every_seconds is not None:
            seconds = timedelta(**{task.interval.period: task.interval.every}).total_seconds()
            assert seconds == job.every_seconds
        else:
            assert task.crontab.minute == job.crontab["minute"]
            assert task.crontab.hour == job.crontab["hour"]
            assert task.crontab.day_of_week == "*"


@pytest.mark.django_db
def test_merge_interval_shown_in_hours():
    PeriodicTask.objects.all().delete()

    create_default_schedules()

    interval = PeriodicTask.objects.get(name=MERGE_JOB.name).interval
    assert (interval.every, interval.period) == (6, IntervalSchedule.HOURS)


@pytest.mark.django_db
def test_defaults_keep_admin_edits():
    PeriodicTask.objects.all().delete()
    create_default_schedules()
    PeriodicTask.objects.filter(name=MERGE_JOB.name).update(enabled=False)

    created = install_default_schedules(PeriodicTask, IntervalSchedule, CrontabSchedule)

    assert created == 0
    assert PeriodicTask.objects.count() == len(JOBS)
    assert not PeriodicTask.objects.get(name=MERGE_JOB.name).enabled


@pytest.mark.django_db
def test_every_registered_job_runs_once(django_capture_on_commit_callbacks):
    """Each job's task is imported by its registered name and run in-process once."""
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    failures = {}
    for job in JOBS:
        module_name, _, function_name = job.task.rpartition(".")
        try:
            task = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            failures[job.task] = f"cannot import: {error}"
            continue
        assert task.name == job.task
        with django_capture_on_commit_callbacks(execute=True):
            result = task.apply()
        if not result.successful():
            failures[job.task] = repr(result.result)

    assert failures == {}
    assert MergeRun.objects.get(trigger="schedule").status == MergeRun.Status.SUCCEEDED


@pytest.fixture
def due_merge_schedule() -> PeriodicTask:
    """The registry's merge schedule, last run seven hours ago, so that it is due now."""
    PeriodicTask.objects.all().delete()
    create_default_schedules()
    PeriodicTask.objects.exclude(name=MERGE_JOB.name).update(enabled=False)
    task = PeriodicTask.objects.get(name=MERGE_JOB.name)
    task.last_run_at = timezone.now() - timedelta(hours=7)
    task.save()
    return task


# The scheduler calls close_old_connections(), which closes a connection that is inside a test's
# transaction, so the tick tests run with real commits (transactional_db).
@pytest.mark.django_db(transaction=True)
def test_scheduler_tick_queues_due_merge(require_service, due_merge_schedule):
    require_service("redis")
    import redis

    with broker_configured() as queue:
        scheduler = DatabaseScheduler(app=celery_app)
        scheduler.tick()
        scheduler.close()
        queued = redis.Redis.from_url(BROKER_URL).lrange(queue, 0, -1)

    names = [json.loads(message)["headers"]["task"] for message in queued]
    assert names == ["merger.tasks.scheduled_merge"]


@pytest.mark.services
def test_beat_schedule_fires_merge_on_worker(worker_factory, due_merge_schedule):  # noqa: F811
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    worker_factory()

    scheduler = DatabaseScheduler(app=celery_app)
    scheduler.tick()
    scheduler.close()

    wait_for(lambda: MergeRun.objects.filter(trigger="schedule").exists(), 30, "the scheduled merge run")
    run = MergeRun.objects.get(trigger="schedule")
    wait_for(lambda: run_status(run.pk) == MergeRun.Status.SUCCEEDED, 60, "the scheduled merge to succeed")
    due_merge_schedule.refresh_from_db()
    assert due_merge_schedule.total_run_count == 1
