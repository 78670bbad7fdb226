"""The health-check registry and runner.

A check is a function that measures one thing and returns a `Measurement`. Register one with the
`register` decorator; its warning and critical limits are defaults that a `Threshold` row (edited
in the admin) overrides:

    @register("export_dir_size", label="Export folder size", unit="MB", warning=500, critical=2000)
    def export_dir_size(context: CheckContext) -> Measurement:
        return Measurement(size_mb, f"{size_mb:.0f} MB of exports")

A check raises `Skip` when its component is not configured and `CheckFailed` (or any exception)
when the component is down: that gives status "critical". `run_checks()` runs every registered
check and returns `CheckResult`s; `overall_status(results)` ranks them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

logger = logging.getLogger(__name__)

OK = "ok"
WARNING = "warning"
CRITICAL = "critical"
SKIPPED = "skipped"
_RANK = {SKIPPED: 0, OK: 0, WARNING: 1, CRITICAL: 2}


class Skip(Exception):
    """Raised by a check whose component is not configured; the message names what is missing."""


class CheckFailed(Exception):
    """Raised by a check whose component is down; the result is critical with this message."""


@dataclass(frozen=True)
class Measurement:
    """A check's measured value and message. A `status` overrides the thresholds; None lets them decide."""

    value: float | None
    message: str
    status: str | None = None


@dataclass(frozen=True)
class Limits:
    """Warning and critical limits; `higher_is_worse` False means low values are bad."""

    warning: float | None = None
    critical: float | None = None
    higher_is_worse: bool = True

    def status_for(self, value: float | None) -> str:
        if value is None:
            return OK
        for level, limit in ((CRITICAL, self.critical), (WARNING, self.warning)):
            if limit is None:
                continue
            if (value >= limit) if self.higher_is_worse else (value <= limit):
                return level
        return OK


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: name, status (ok, warning, critical, skipped), value and message."""

    name: str
    status: str
    value: float | None
    message: str
    label: str = ""
    unit: str = ""
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "status": self.status,
            "value": self.value,
            "unit": self.unit,
            "message": self.message,
            "duration_ms": round(self.duration_ms, 2),
        }


@dataclass
class CheckContext:
    """Input of a check: the time of the run, injected so that age checks are testable."""

    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)


CheckFunction = Callable[[CheckContext], Measurement]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check with its display label, unit and default limits."""

    name: str
    function: CheckFunction
    label: str
    unit: str
    limits: Limits


_REGISTRY: dict[str, CheckSpec] = {}


def register(
    name: str,
    *,
    label: str = "",
    unit: str = "",
    warning: float | None = None,
    critical: float | None = None,
    higher_is_worse: bool = True,
    replace: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Add a check to the registry under `name` (a decorator); raise ValueError on a duplicate name.

    `warning`/`critical` are the default limits in the check's `unit`; pass `replace=True` to
    swap an existing check on purpose (tests, plugins).
    """

    def decorator(function: CheckFunction) -> CheckFunction:
        if name in _REGISTRY and not replace:
            raise ValueError(
                f"health check {name!r} is already registered: pick another name or pass replace=True"
            )
        _REGISTRY[name] = CheckSpec(
            name=name,
            function=function,
            label=label or name.replace("_", " "),
            unit=unit,
            limits=Limits(warning, critical, higher_is_worse),
        )
        return function

    return decorator


def unregister(name: str) -> None:
    """Remove a check; unknown names are ignored."""
    _REGISTRY.pop(name, None)


def registered_checks() -> dict[str, CheckSpec]:
    return dict(_REGISTRY)


def effective_limits(spec: CheckSpec, thresholds: dict[str, Any]) -> Limits:
    """Return the limits of `spec`, with the admin's Threshold row (if any) taking precedence."""
    row = thresholds.get(spec.name)
    if row is None:
        return spec.limits
    return Limits(row.warning, row.critical, row.direction == "above")


def _load_thresholds() -> dict[str, Any]:
    from monitoring.models import Threshold

    try:
        return {row.check_name: row for row in Threshold.objects.all()}
    except Exception:
        # The database check reports a database outage; the other checks still run on defaults.
        logger.warning("could not read thresholds, using the registered defaults", exc_info=True)
        return {}


def run_check(spec: CheckSpec, context: CheckContext, limits: Limits) -> CheckResult:
    """Run one check and turn its measurement, skip or exception into a CheckResult."""
    started = time.perf_counter()
    value: float | None = None
    try:
        measurement = spec.function(context)
    except Skip as skip:
        status, message = SKIPPED, str(skip)
    except CheckFailed as failure:
        status, message = CRITICAL, str(failure)
    except Exception as error:
        logger.warning("health check %s failed: %s: %s", spec.name, type(error).__name__, error)
        status, message = CRITICAL, f"{type(error).__name__}: {error}"
    else:
        value = measurement.value
        message = measurement.message
        status = measurement.status or limits.status_for(value)
    return CheckResult(
        name=spec.name,
        status=status,
        value=value,
        message=message[:500],
        label=str(spec.label),
        unit=spec.unit,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def run_checks(names: Iterable[str] | None = None, *, now: datetime | None = None) -> list[CheckResult]:
    """Run the registered checks (all, or those in `names`) in registration order and return their results.

    Raises KeyError naming the check when `names` contains an unregistered one.
    """
    if names is None:
        specs = list(_REGISTRY.values())
    else:
        unknown = [name for name in names if name not in _REGISTRY]
        if unknown:
            raise KeyError(f"unknown health check {unknown[0]!r}: registered are {', '.join(_REGISTRY)}")
        specs = [_REGISTRY[name] for name in names]
    context = CheckContext(now=now or timezone.now())
    thresholds = _load_thresholds()
    return [run_check(spec, context, effective_limits(spec, thresholds)) for spec in specs]


def overall_status(results: Iterable[CheckResult]) -> str:
    """Return the worst status among `results`: "critical", "warning", or "ok" (skipped counts as ok)."""
    worst = OK
    for result in results:
        if _RANK.get(result.status, 0) > _RANK[worst]:
            worst = result.status
    return worst


def exit_code(status: str) -> int:
    """Return the command exit status for an overall status: 0 ok, 1 warning, 2 critical."""
    return _RANK.get(status, 0)
