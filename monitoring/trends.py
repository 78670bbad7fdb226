"""Trend maths over (time, value) series: least-squares slope, EWMA, degradation and forecasts.

Plain functions over numbers with no Django import, so they are tested on known series. Times are
seconds (Unix timestamps or any other origin); a slope is value units per second.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]


def linear_fit(points: Sequence[Point]) -> tuple[float, float] | None:
    """Fit value = slope * time + intercept by least squares; None with under two distinct times."""
    count = len(points)
    if count < 2:
        return None
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    # Centring on the means keeps the sums small when x is a Unix timestamp near 1.7e9.
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


def slope(points: Sequence[Point]) -> float | None:
    """Return the least-squares slope in value units per time unit, or None when undefined."""
    fit = linear_fit(points)
    return fit[0] if fit else None


def ewma(values: Sequence[float], *, alpha: float | None = None, span: int | None = None) -> float | None:
    """Return the exponentially weighted moving average of `values` (oldest first).

    Give either `alpha` (0 < alpha <= 1, the weight of the newest value) or `span`, which sets
    alpha = 2 / (span + 1) as pandas does. The first value seeds the average.
    """
    if alpha is None:
        if span is None or span < 1:
            raise ValueError(f"ewma needs alpha or a span of at least 1, got span={span!r}")
        alpha = 2.0 / (span + 1)
    if not 0 < alpha <= 1:
        raise ValueError(f"ewma alpha must be in (0, 1], got {alpha!r}")
    average: float | None = None
    for value in values:
        average = value if average is None else alpha * value + (1 - alpha) * average
    return average


def degradation_ratio(current: float, history: Sequence[float]) -> float | None:
    """Return current / median(history), or None when history is empty or its median is not positive."""
    if not history:
        return None
    median = statistics.median(history)
    if median <= 0:
        return None
    return current / median


def is_degraded(current: float, history: Sequence[float], *, factor: float = 1.5) -> bool:
    """Return True when `current` is at least `factor` times the median of `history` (1.5 = 50% above)."""
    ratio = degradation_ratio(current, history)
    return ratio is not None and ratio >= factor


def forecast_crossing(points: Sequence[Point], limit: float) -> float | None:
    """Return the time at which the fitted line reaches `limit`, or None if it is not heading there.

    None when the fit is undefined, the line is flat, or the fitted value at the newest point is
    already past the limit or moving away from it.
    """
    fit = linear_fit(points)
    if fit is None:
        return None
    rate, intercept = fit
    gap = limit - (rate * points[-1][0] + intercept)
    if gap == 0:
        return points[-1][0]
    if rate == 0 or (gap > 0) != (rate > 0):
        return None
    return (limit - intercept) / rate


@dataclass(frozen=True)
class TrendSummary:
    """A metric's trend over a window: the newest value, slope per hour, EWMA and median."""

    name: str
    count: int
    latest: float | None
    slope_per_hour: float | None
    ewma: float | None
    median: float | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "name": self.name,
            "count": self.count,
            "latest": self.latest,
            "slope_per_hour": self.slope_per_hour,
            "ewma": self.ewma,
            "median": self.median,
        }


def summarize(name: str, points: Sequence[Point], *, span: int = 10) -> TrendSummary:
    """Summarise a series of (seconds, value) points, oldest first."""
    values = [value for _, value in points]
    rate = slope(points)
    return TrendSummary(
        name=name,
        count=len(points),
        latest=values[-1] if values else None,
        slope_per_hour=rate * 3600 if rate is not None else None,
        ewma=ewma(values, span=span) if values else None,
        median=statistics.median(values) if values else None,
    )
