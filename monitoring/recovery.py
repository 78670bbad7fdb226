"""Automated recovery: a registry mapping check statuses to actions, bounded and recorded.

An action is a function `(context) -> ActionOutcome`. It receives `dry_run`; in a dry run it must
change nothing and describe what it would do. `run_recovery(results)` runs the actions whose check
is in one of the action's trigger statuses, at most MONITORING["RECOVERY_MAX_ATTEMPTS"] times per
action within MONITORING["RECOVERY_WINDOW"], and stores a RecoveryAttempt for every run.

Add an action with:

    @register_action("restart_cache", check="cache", statuses=("critical",))
    def restart_cache(context: RecoveryContext) -> ActionOutcome: ...
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from merger.models import MergeRun, Source
from monitoring import alerts
from monitoring.builtin_checks import broker_url, control_app, stuck_runs
from monitoring.checks import CRITICAL, OK, SKIPPED, WARNING, CheckResult
from monitoring.models import Alert, HealthSnapshot, RecoveryAttempt, SourceBreaker

logger = logging.getLogger(__name__)

Outcome = RecoveryAttempt.Outcome


@dataclass(frozen=True)
class RecoveryContext:
    """Input of an action: the triggering check's result, the time, and whether it may change anything."""

    result: CheckResult
    now: datetime
    dry_run: bool


@dataclass(frozen=True)
class ActionOutcome:
    outcome: str
    detail: str


@dataclass(frozen=True)
class RecoveryAction:
    name: str
    check: str
    statuses: tuple[str, ...]
    function: Callable[[RecoveryContext], ActionOutcome]
    # Actions that usually find nothing to do (the breaker runs every snapshot) record only real work.
    record_nothing: bool = True


_ACTIONS: dict[str, RecoveryAction] = {}


def register_action(
    name: str,
    *,
    check: str,
    statuses: Iterable[str] = (WARNING, CRITICAL),
    record_nothing: bool = True,
    replace: bool = False,
) -> Callable[[Callable[[RecoveryContext], ActionOutcome]], Callable[[RecoveryContext], ActionOutcome]]:
    """Register a recovery action run when check `check` has one of `statuses` (a decorator)."""

    def decorator(
        function: Callable[[RecoveryContext], ActionOutcome],
    ) -> Callable[[RecoveryContext], ActionOutcome]:
        if name in _ACTIONS and not replace:
            raise ValueError(
                f"recovery action {name!r} is already registered: pick another name or pass replace=True"
            )
        _ACTIONS[name] = RecoveryAction(name, check, tuple(statuses), function, record_nothing)
        return function

    return decorator


def registered_actions() -> dict[str, RecoveryAction]:
    return dict(_ACTIONS)


def run_recovery(
    results: Iterable[CheckResult], *, now: datetime | None = None, dry_run: bool | None = None
) -> list[RecoveryAttempt]:
    """Run the actions triggered by `results` and return the RecoveryAttempts recorded."""
    config = settings.MONITORING
    if not config["RECOVERY_ENABLED"]:
        return []
    now = now or timezone.now()
    dry_run = config["RECOVERY_DRY_RUN"] if dry_run is None else dry_run
    by_name = {result.name: result for result in results}
    attempts: list[RecoveryAttempt] = []
    for action in _ACTIONS.values():
        result = by_name.get(action.check)
        if result is None or result.status not in action.statuses:
            continue
        if _attempts_exhausted(action.name, now):
            logger.warning(
                "recovery action %s skipped: %d attempts within %d s already",
                action.name,
                config["RECOVERY_MAX_ATTEMPTS"],
                config["RECOVERY_WINDOW"],
            )
            continue
        attempt = _run_one(action, RecoveryContext(result=result, now=now, dry_run=dry_run))
        if attempt is not None:
            attempts.append(attempt)
    return attempts


def _attempts_exhausted(action: str, now: datetime) -> bool:
    config = settings.MONITORING
    since = now - timedelta(seconds=config["RECOVERY_WINDOW"])
    counted = RecoveryAttempt.objects.filter(action=action, created_at__gt=since).exclude(
        outcome__in=[Outcome.NOTHING_TO_DO, Outcome.SKIPPED]
    )
    return counted.count() >= config["RECOVERY_MAX_ATTEMPTS"]


def _run_one(action: RecoveryAction, context: RecoveryContext) -> RecoveryAttempt | None:
    try:
        with transaction.atomic():
            outcome = action.function(context)
    except Exception as error:
        logger.exception("recovery action %s failed for check %s", action.name, action.check)
        outcome = ActionOutcome(Outcome.FAILED, f"{type(error).__name__}: {error}")
    if outcome.outcome == Outcome.NOTHING_TO_DO and not action.record_nothing:
        return None
    if outcome.outcome not in (Outcome.NOTHING_TO_DO, Outcome.DRY_RUN):
        logger.warning("recovery action %s: %s (%s)", action.name, outcome.outcome, outcome.detail)
    return RecoveryAttempt.objects.create(
        action=action.name,
        check_name=action.check,
        outcome=outcome.outcome,
        detail=outcome.detail[:5000],
        created_at=context.now,
    )


# --- Built-in actions -------------------------------------------------------------------------


@register_action("fail_stuck_runs", check="stuck_runs")
def fail_stuck_runs(context: RecoveryContext) -> ActionOutcome:
    """Mark running merges without a heartbeat as failed, so the next scheduled merge can start."""
    runs = list(stuck_runs(context.now).select_for_update())
    if not runs:
        return ActionOutcome(Outcome.NOTHING_TO_DO, "no stuck run")
    ids = ", ".join(f"#{run.pk}" for run in runs)
    if context.dry_run:
        return ActionOutcome(Outcome.DRY_RUN, f"would mark runs {ids} failed")
    timeout = settings.VPNMERGER["HEARTBEAT_TIMEOUT"]
    for run in runs:
        run.status = MergeRun.Status.FAILED
        run.finished_at = context.now
        run.error = (run.error + "\n" if run.error else "") + (
            f"Marked failed by monitoring: no heartbeat for more than {timeout} s (the worker probably died)."
        )
        run.save(update_fields=["status", "finished_at", "error"])
    # NOTE: stuck runs are failed, not requeued; the next scheduled merge takes over their work.
    return ActionOutcome(Outcome.SUCCEEDED, f"marked runs {ids} failed")


@register_action(
    "source_circuit_breaker",
    check="failing_sources",
    statuses=(OK, WARNING, CRITICAL, SKIPPED),
    record_nothing=False,
)
def source_circuit_breaker(context: RecoveryContext) -> ActionOutcome:
    """Disable sources failing BREAKER_FAILURES times in a row and re-enable them after the cool-down.

    A re-enabled source is on trial (half open): one further failure disables it again.
    """
    config = settings.MONITORING
    limit = config["BREAKER_FAILURES"]
    cooldown = timedelta(seconds=config["BREAKER_COOLDOWN"])
    done: list[str] = []
    verb = "would " if context.dry_run else ""

    for breaker in SourceBreaker.objects.select_related("source").filter(
        state=SourceBreaker.State.OPEN, retry_at__lte=context.now
    ):
        source = breaker.source
        done.append(f"{verb}re-enable {source.name} after the cool-down")
        if context.dry_run:
            continue
        breaker.state = SourceBreaker.State.HALF_OPEN
        breaker.failures_baseline = source.consecutive_failures
        breaker.save(update_fields=["state", "failures_baseline"])
        Source.objects.filter(pk=source.pk).update(enabled=True)
        alerts.resolve(
            f"breaker:source:{source.pk}", now=context.now, message=f"{source.name} re-enabled on trial"
        )

    for source in Source.objects.filter(enabled=True, consecutive_failures__gt=0).select_related("breaker"):
        breaker = getattr(source, "breaker", None)
        on_trial = breaker is not None and breaker.state == SourceBreaker.State.HALF_OPEN
        if on_trial and source.consecutive_failures > breaker.failures_baseline:
            reason = "failed again on trial"
        elif source.consecutive_failures >= limit and not on_trial:
            reason = f"failed {source.consecutive_failures} times in a row"
        else:
            continue
        done.append(
            f"{verb}disable {source.name} ({reason}) until {context.now + cooldown:%Y-%m-%d %H:%M} UTC"
        )
        if context.dry_run:
            continue
        breaker, _created = SourceBreaker.objects.get_or_create(source=source)
        breaker.state = SourceBreaker.State.OPEN
        breaker.opened_at = context.now
        breaker.retry_at = context.now + cooldown
        breaker.trips += 1
        breaker.save()
        Source.objects.filter(pk=source.pk).update(enabled=False)
        alerts.raise_alert(
            f"breaker:source:{source.pk}",
            severity=Alert.Severity.INFO,
            title=f"Source {source.name} disabled by the circuit breaker",
            message=f"{reason}; re-enabled on trial at {breaker.retry_at:%Y-%m-%d %H:%M} UTC",
            value=source.consecutive_failures,
            now=context.now,
        )

    # The merge resets consecutive_failures after a successful fetch, so a trial source at 0 has recovered.
    for breaker in SourceBreaker.objects.filter(state=SourceBreaker.State.HALF_OPEN).select_related("source"):
        if breaker.source.consecutive_failures == 0 and not context.dry_run:
            breaker.state = SourceBreaker.State.CLOSED
            breaker.save(update_fields=["state"])

    if not done:
        return ActionOutcome(Outcome.NOTHING_TO_DO, "no source to disable or re-enable")
    return ActionOutcome(Outcome.DRY_RUN if context.dry_run else Outcome.SUCCEEDED, "; ".join(done))


@register_action("free_disk_space", check="disk", statuses=(CRITICAL,))
def free_disk_space(context: RecoveryContext) -> ActionOutcome:
    """Delete thinned-away snapshots and the exports of all but the newest succeeded runs."""
    from monitoring.snapshots import thin_snapshots

    keep = settings.MONITORING["DISK_KEEP_EXPORTS"]
    export_root = Path(settings.VPNMERGER["EXPORT_DIR"]).resolve()
    kept = {
        Path(path).resolve()
        for path in MergeRun.objects.filter(status=MergeRun.Status.SUCCEEDED)
        .exclude(export_dir="")
        .order_by("-finished_at", "-pk")
        .values_list("export_dir", flat=True)[:keep]
    }
    running = {
        Path(path).resolve()
        for path in MergeRun.objects.filter(status__in=[MergeRun.Status.RUNNING, MergeRun.Status.PENDING])
        .exclude(export_dir="")
        .values_list("export_dir", flat=True)
    }
    # Only run-* folders directly inside EXPORT_DIR are candidates, so nothing else is ever deleted.
    candidates = sorted(
        path
        for path in (export_root.glob("run-*") if export_root.is_dir() else [])
        if path.is_dir() and path.resolve() not in kept | running
    )
    old_snapshots = HealthSnapshot.objects.filter(
        taken_at__lt=context.now - timedelta(seconds=settings.MONITORING["THIN_AFTER"])
    )
    if context.dry_run:
        names = ", ".join(path.name for path in candidates) or "none"
        return ActionOutcome(
            Outcome.DRY_RUN,
            f"would delete export folders: {names}; would thin {old_snapshots.count()} old snapshots",
        )
    freed = 0
    for path in candidates:
        freed += sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
        shutil.rmtree(path)
    thinned = thin_snapshots(now=context.now)
    if not candidates and not thinned:
        return ActionOutcome(Outcome.NOTHING_TO_DO, "no old exports or snapshots to delete")
    return ActionOutcome(
        Outcome.SUCCEEDED,
        f"deleted {len(candidates)} export folders ({freed / 1024**2:.1f} MB) and {thinned} snapshots",
    )


@register_action("restart_worker_pool", check="workers", statuses=(WARNING, CRITICAL))
def restart_worker_pool(context: RecoveryContext) -> ActionOutcome:
    """Ask every worker to restart its pool processes through Celery's remote control (pool_restart)."""
    url = broker_url()
    if not url:
        return ActionOutcome(Outcome.SKIPPED, "no broker configured, so there is no worker pool to restart")
    if context.dry_run:
        return ActionOutcome(Outcome.DRY_RUN, "would broadcast pool_restart to every worker")
    timeout = settings.MONITORING["CHECK_TIMEOUT"]
    replies = control_app(url).control.broadcast(
        "pool_restart", arguments={"reload": False}, reply=True, timeout=timeout
    )
    if not replies:
        # No worker replied, so none can be restarted from here and an operator must act.
        return ActionOutcome(Outcome.FAILED, f"no worker replied to pool_restart within {timeout:g} s")
    replied = ", ".join(sorted(name for reply in replies for name in reply))
    # A worker started without worker_pool_restarts rejects pool_restart and puts the error in its reply.
    errors = [str(body.get("error")) for reply in replies for body in reply.values() if body.get("error")]
    if errors:
        return ActionOutcome(Outcome.FAILED, f"pool_restart rejected by {replied}: {errors[0]}")
    return ActionOutcome(Outcome.SUCCEEDED, f"pool restarted on {replied}")
