"""The steps that change something (apply) and the checks after them (verify, monitoring)."""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from merger import services as merge_services
from merger.models import MergeRun

from . import checks
from .models import Deployment, InstalledVersion
from .steps import FAILED, OK, SKIPPED, WARNING, StepOutcome

logger = logging.getLogger(__name__)


def current_version() -> str:
    """Return the version of the newest InstalledVersion entry, or "" when none was recorded."""
    return (
        InstalledVersion.objects.order_by("-recorded_at", "-pk").values_list("version", flat=True).first()
        or ""
    )


def migrate() -> StepOutcome:
    output = io.StringIO()
    try:
        call_command("migrate", interactive=False, verbosity=1, stdout=output, stderr=output)
    except Exception as error:
        # The migrations applied before the failing one are part of what the rollback undoes,
        # so the output keeps them next to the error.
        logger.exception("migrate failed during a deployment")
        return StepOutcome(FAILED, f"{output.getvalue().strip()}\n{type(error).__name__}: {error}")
    return StepOutcome(OK, output.getvalue().strip())


def collect_static() -> StepOutcome:
    output = io.StringIO()
    call_command("collectstatic", interactive=False, verbosity=1, stdout=output, stderr=output)
    return StepOutcome(OK, output.getvalue().strip())


def record_version(deployment: Deployment) -> StepOutcome:
    InstalledVersion.objects.create(
        version=deployment.version, reason=InstalledVersion.Reason.DEPLOY, deployment=deployment
    )
    return StepOutcome(
        OK, f"current version: {deployment.version} (was {deployment.previous_version or 'none'})"
    )


def reload_workers() -> StepOutcome:
    """Ask every Celery worker to restart its pool so that it loads the new code."""
    broker = settings.CELERY_BROKER_URL
    if not broker:
        return StepOutcome(
            SKIPPED, "no broker configured: tasks run in-process, so there is no worker to reload"
        )
    from vpnmerger.celery import app

    timeout = settings.DEPLOYMENTS["WORKER_RELOAD_TIMEOUT"]
    with app.connection_for_write(broker) as connection:
        # Connect once with a bound wait, so that an unreachable broker fails the step quickly
        # instead of retrying for minutes.
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        replies = app.control.broadcast(
            "pool_restart", arguments={"reload": True}, reply=True, timeout=timeout, connection=connection
        )
    if not replies:
        return StepOutcome(WARNING, f"no worker answered within {timeout:g} s; start workers to serve tasks")
    lines = []
    rejected = False
    for reply in replies:
        for worker, answer in reply.items():
            if "error" in answer:
                rejected = True
                lines.append(f"{worker}: {answer['error']}")
            else:
                lines.append(f"{worker}: {answer.get('ok', 'reloaded')}")
    if rejected:
        lines.append("start the workers with worker_pool_restarts enabled, or restart them by hand")
        return StepOutcome(WARNING, "\n".join(lines))
    return StepOutcome(OK, "\n".join(lines))


def verify_health() -> StepOutcome:
    return checks.health()


def sample_files() -> list[Path]:
    folder = Path(settings.DEPLOYMENTS["SAMPLES_DIR"])
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))


def verify_sample_merge() -> StepOutcome:
    """Merge the sample subscriptions into a temporary folder, leaving no trace in the database.

    The merge runs inside a transaction that is rolled back, so its MergeRun, Node and
    SourceResult rows vanish, and so do its live events, which wait for a commit. The exports go
    to a temporary folder, so the current exports are never touched.
    """
    files = sample_files()
    if not files:
        return StepOutcome(
            FAILED,
            f"no sample files in {settings.DEPLOYMENTS['SAMPLES_DIR']}: "
            "restore the samples folder or set DEPLOY_SAMPLES_DIR",
        )
    with tempfile.TemporaryDirectory(prefix="vpnmerger-verify-") as folder:
        with transaction.atomic():
            run = merge_services.run_merge(
                inputs=merge_services.inputs_from_locations(str(path) for path in files),
                out_dir=Path(folder) / "exports",
                trigger="deploy-verify",
            )
            exported = sorted(path.name for path in (Path(folder) / "exports").iterdir())
            transaction.set_rollback(True)
    summary = (
        f"merged {len(files)} sample files: {run.unique} unique nodes, {run.sources_failed} inputs failed, "
        f"exports: {', '.join(exported)}"
    )
    if run.status != MergeRun.Status.SUCCEEDED or run.unique == 0 or run.sources_failed:
        return StepOutcome(FAILED, f"{summary} (status {run.status}: {run.error or 'no nodes'})")
    return StepOutcome(OK, summary)


def schedules() -> StepOutcome:
    """Check that every job of the periodic registry has an enabled beat schedule; create missing ones.

    Disabled schedules are reported, not switched on, because they may have been turned off in
    the admin on purpose.
    """
    if not settings.CELERY_BROKER_URL:
        return StepOutcome(SKIPPED, "no broker configured: celery beat does not run in the embedded default")
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    from vpnmerger.periodic import JOBS, install_default_schedules

    created = install_default_schedules(PeriodicTask, IntervalSchedule, CrontabSchedule)
    names = [job.name for job in JOBS]
    disabled = sorted(
        PeriodicTask.objects.filter(name__in=names, enabled=False).values_list("name", flat=True)
    )
    lines = [f"{len(names) - len(disabled)} of {len(names)} schedules enabled"]
    if created:
        lines.append(f"created {created} missing schedule(s)")
    if disabled:
        lines.append(f"disabled: {', '.join(disabled)}; enable them under Periodic tasks in the admin")
        status = FAILED if len(disabled) == len(names) else WARNING
        return StepOutcome(status, "\n".join(lines))
    return StepOutcome(OK, "\n".join(lines))
