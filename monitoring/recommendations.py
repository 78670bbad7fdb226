"""Rules that turn check results and trends into recommendations with a severity and a fix.

A rule is a function `(context) -> Iterable[Recommendation]` added with `@rule`. `recommendations()`
runs every rule, isolating a failing rule from the others, and returns the findings most severe first.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from merger.models import MergeRun, Source, SourceResult
from monitoring import trends
from monitoring.checks import CRITICAL, WARNING, CheckResult, run_checks
from monitoring.models import RecoveryAttempt, SourceBreaker
from monitoring.snapshots import trend_series

logger = logging.getLogger(__name__)

_RANK = {"critical": 0, "warning": 1, "info": 2}
# Merge duration counts as degraded at this multiple of its 7-day median (1.5 = 50% above).
DEGRADATION_FACTOR = 1.5


@dataclass(frozen=True)
class Recommendation:
    severity: str
    title: str
    fix: str
    check: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "title": self.title, "fix": self.fix, "check": self.check}


@dataclass
class RuleContext:
    now: datetime
    results: dict[str, CheckResult]


Rule = Callable[[RuleContext], Iterable[Recommendation]]
_RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    """Add a recommendation rule (a decorator)."""
    _RULES.append(function)
    return function


def recommendations(
    results: list[CheckResult] | None = None, *, now: datetime | None = None
) -> list[Recommendation]:
    """Return every rule's recommendations, most severe first; checks run when `results` is None."""
    now = now or timezone.now()
    if results is None:
        results = run_checks(now=now)
    context = RuleContext(now=now, results={result.name: result for result in results})
    found: list[Recommendation] = []
    for function in _RULES:
        try:
            found.extend(function(context))
        except Exception:
            logger.exception("recommendation rule %s failed", function.__name__)
    return sorted(found, key=lambda item: _RANK.get(item.severity, 3))


def _timestamped(series: list[tuple[datetime, float]]) -> list[tuple[float, float]]:
    return [(moment.timestamp(), value) for moment, value in series]


@rule
def disk_fill_forecast(context: RuleContext) -> Iterable[Recommendation]:
    points = _timestamped(trend_series("disk", hours=7 * 24, now=context.now))
    if len(points) < 3:
        return
    full_at = trends.forecast_crossing(points, 100.0)
    if full_at is None:
        return
    hours_left = (full_at - context.now.timestamp()) / 3600
    if hours_left > 14 * 24:
        return
    severity = CRITICAL if hours_left <= 24 else WARNING
    yield Recommendation(
        severity,
        f"The disk fills in about {max(hours_left, 0):.0f} hours at the current rate",
        "Delete old exports and snapshots (lower MONITORING_RETENTION_DAYS or MONITORING_DISK_KEEP_EXPORTS) "
        "or give VAR_DIR a larger disk.",
        "disk",
    )


@rule
def merge_duration_degraded(context: RuleContext) -> Iterable[Recommendation]:
    runs = list(
        MergeRun.objects.filter(
            status=MergeRun.Status.SUCCEEDED,
            started_at__isnull=False,
            finished_at__gte=context.now - timedelta(days=7),
        ).order_by("-finished_at")[:500]
    )
    if len(runs) < 4:
        return
    latest, history = runs[0], [run.duration or 0.0 for run in runs[1:]]
    current = latest.duration or 0.0
    if not trends.is_degraded(current, history, factor=DEGRADATION_FACTOR):
        return
    median = statistics.median(history)
    slowest = (
        SourceResult.objects.filter(run=latest)
        .order_by("-elapsed_ms")
        .values_list("label", "elapsed_ms")
        .first()
    )
    hint = f" The slowest input was {slowest[0]} ({slowest[1] / 1000:.1f} s)." if slowest else ""
    yield Recommendation(
        WARNING,
        f"Merge #{latest.pk} took {current:.0f} s, "
        f"{current / median:.1f}x the 7-day median of {median:.0f} s",
        "Look for slow or growing sources in the run's source results, and lower VPNMERGER_FETCH_TIMEOUT "
        "if one provider hangs." + hint,
        "merge_duration",
    )


@rule
def failing_sources(context: RuleContext) -> Iterable[Recommendation]:
    for source in Source.objects.filter(enabled=True, consecutive_failures__gte=3).order_by(
        "-consecutive_failures"
    )[:10]:
        yield Recommendation(
            WARNING,
            f"Source {source.name} failed {source.consecutive_failures} times in a row",
            f"Last error: {source.last_error or 'unknown'}. Check its URL and User-Agent, or disable it.",
            "failing_sources",
        )


@rule
def suspended_sources(context: RuleContext) -> Iterable[Recommendation]:
    for breaker in SourceBreaker.objects.filter(state=SourceBreaker.State.OPEN).select_related("source"):
        yield Recommendation(
            "info",
            f"Source {breaker.source.name} is disabled by the circuit breaker",
            f"It is re-enabled on trial at {breaker.retry_at:%Y-%m-%d %H:%M} UTC; "
            "fix or remove it before then.",
            "failing_sources",
        )


@rule
def memory_rising(context: RuleContext) -> Iterable[Recommendation]:
    summary = trends.summarize("memory", _timestamped(trend_series("memory", hours=6, now=context.now)))
    if summary.count < 5 or summary.slope_per_hour is None or summary.ewma is None:
        return
    if summary.slope_per_hour >= 2 and summary.ewma >= 70:
        yield Recommendation(
            WARNING,
            f"Memory use rises {summary.slope_per_hour:.1f} points per hour (average {summary.ewma:.0f}%)",
            "Restart the workers (a leak grows with each task) or lower CELERY_WORKER_CONCURRENCY.",
            "memory",
        )


@rule
def service_problems(context: RuleContext) -> Iterable[Recommendation]:
    fixes = {
        "workers": "Start a worker (`celery -A vpnmerger worker -l info`) that uses CELERY_BROKER_URL.",
        "broker": "Start the broker named by CELERY_BROKER_URL, or empty it to run tasks in-process.",
        "database": "Check that the database in DATABASE_URL is running and accepts connections.",
        "channel_layer": "Start Redis at REDIS_URL, or empty REDIS_URL to use the in-memory layer.",
        "merge_freshness": "Check that celery beat runs the merge schedule, or run `manage.py merge` now.",
        "stuck_runs": "Monitoring marks stuck runs failed; check the worker logs for why the merge stopped.",
        "queue_backlog": "Start more workers or raise their concurrency: tasks arrive faster than they run.",
        "source_success_rate": "Many sources failed in the last merge; check the network and their URLs.",
        "cpu": "Lower VPNMERGER_FETCH_CONCURRENCY or the worker concurrency.",
        "memory": "Lower the worker concurrency or VPNMERGER_PROBE_BATCH_SIZE.",
        "disk": "Delete old exports and snapshots or give VAR_DIR a larger disk.",
        "merge_duration": "Look for slow sources in the last run's source results.",
    }
    for name, result in context.results.items():
        if result.status not in (WARNING, CRITICAL):
            continue
        yield Recommendation(
            result.status,
            f"{result.label or name}: {result.message}",
            fixes.get(name, "See the check's message."),
            name,
        )


@rule
def failing_recovery(context: RuleContext) -> Iterable[Recommendation]:
    window = timedelta(seconds=settings.MONITORING["RECOVERY_WINDOW"])
    failed = (
        RecoveryAttempt.objects.filter(
            created_at__gt=context.now - window, outcome=RecoveryAttempt.Outcome.FAILED
        )
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )
    for action in failed:
        yield Recommendation(
            WARNING,
            f"Automated recovery {action} failed recently",
            "Read the recovery attempts in the admin for the error; the problem needs a person.",
            "",
        )
