"""The built-in health checks: system, database, broker, workers, channel layer and merges.

Imported once by MonitoringConfig.ready(), which registers them. Limits are defaults that a
Threshold row overrides. Each check's `unit` is percent, milliseconds, seconds or a count.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import timedelta

import psutil
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from health_check.checks import Database
from health_check.exceptions import HealthCheckException

from merger.models import MergeRun, Source
from monitoring.checks import CheckContext, CheckFailed, Measurement, Skip, register

GIB = 1024**3
# The connection the database check probes; tests point it at an unreachable server.
DATABASE_ALIAS = "default"
# psutil measures CPU use between two calls; a gap shorter than this gives a meaningless figure.
_MIN_CPU_INTERVAL = 0.1
_last_cpu_call = 0.0


def monitoring_setting(key: str):
    return settings.MONITORING[key]


def broker_url() -> str:
    return settings.CELERY_BROKER_URL or ""


@functools.lru_cache(maxsize=4)
def control_app(url: str):
    """Return a Celery app bound to `url` for remote control (ping, pool_restart).

    Celery's control commands publish through the app's own producer pool even when given another
    connection, so a separate app per broker URL makes the command go where the check looks.
    """
    from celery import Celery

    return Celery("vpnmerger-monitoring", broker=url, set_as_current=False)


def broker_is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://"))


@register("cpu", label="CPU use", unit="%", warning=85, critical=95)
def check_cpu(context: CheckContext) -> Measurement:
    global _last_cpu_call
    now = time.monotonic()
    # With the previous call long enough ago, psutil returns the average since then (the snapshot
    # interval); otherwise it samples for a short blocking interval.
    interval = None if now - _last_cpu_call >= _MIN_CPU_INTERVAL and _last_cpu_call else _MIN_CPU_INTERVAL
    percent = psutil.cpu_percent(interval=interval)
    _last_cpu_call = time.monotonic()
    return Measurement(percent, f"{percent:.1f}% of {psutil.cpu_count()} cores")


@register("memory", label="Memory use", unit="%", warning=85, critical=95)
def check_memory(context: CheckContext) -> Measurement:
    memory = psutil.virtual_memory()
    return Measurement(
        memory.percent,
        f"{memory.percent:.1f}% used, {memory.available / GIB:.1f} GiB of {memory.total / GIB:.1f} GiB free",
    )


@register("disk", label="Disk space", unit="%", warning=85, critical=95)
def check_disk(context: CheckContext) -> Measurement:
    usage = psutil.disk_usage(str(settings.VAR_DIR))
    return Measurement(
        usage.percent, f"{usage.percent:.1f}% used, {usage.free / GIB:.1f} GiB free at {settings.VAR_DIR}"
    )


@register("database", label="Database", unit="ms", warning=1000)
def check_database(context: CheckContext) -> Measurement:
    started = time.perf_counter()
    try:
        # django-health-check's probe runs SELECT 1 on a temporary connection.
        Database(alias=DATABASE_ALIAS).run()
    except HealthCheckException as error:
        raise CheckFailed(f"database unavailable: {error.message}") from error
    elapsed = (time.perf_counter() - started) * 1000
    return Measurement(round(elapsed, 2), f"SELECT 1 took {elapsed:.1f} ms")


@register("broker", label="Celery broker", unit="ms", warning=1000)
def check_broker(context: CheckContext) -> Measurement:
    from kombu import Connection

    url = broker_url()
    if not url:
        raise Skip("no broker: CELERY_BROKER_URL is empty, tasks run in-process")
    timeout = monitoring_setting("CHECK_TIMEOUT")
    started = time.perf_counter()
    try:
        with Connection(
            url, connect_timeout=timeout, transport_options={"socket_timeout": timeout}
        ) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            # Opening a channel makes transports that connect lazily (Redis) reach the server.
            connection.default_channel.close()
    except Exception as error:
        raise CheckFailed(f"cannot reach the broker at {_redacted(url)}: {error}") from error
    elapsed = (time.perf_counter() - started) * 1000
    return Measurement(round(elapsed, 2), f"connected to {_redacted(url)} in {elapsed:.1f} ms")


@register("workers", label="Celery workers", unit="workers", warning=None, critical=None)
def check_workers(context: CheckContext) -> Measurement:
    url = broker_url()
    if not url:
        raise Skip("no broker: tasks run in-process, so no worker is needed")
    timeout = monitoring_setting("CHECK_TIMEOUT")
    replies = control_app(url).control.ping(timeout=timeout)
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise CheckFailed(
            f"no Celery worker replied to a ping within {timeout:g} s; "
            "start one with `celery -A vpnmerger worker`"
        )
    return Measurement(len(names), f"{len(names)} replied: {', '.join(names)}", status="ok")


@register("channel_layer", label="Channel layer round trip", unit="ms", warning=500)
def check_channel_layer(context: CheckContext) -> Measurement:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise Skip("no channel layer configured (CHANNEL_LAYERS is empty)")
    timeout = monitoring_setting("CHECK_TIMEOUT")

    async def round_trip() -> float:
        started = time.perf_counter()
        channel = await layer.new_channel("health.")
        await layer.send(channel, {"type": "health.ping"})
        message = await layer.receive(channel)
        if message.get("type") != "health.ping":
            raise CheckFailed(f"channel layer returned {message!r} instead of the ping")
        return (time.perf_counter() - started) * 1000

    async def bounded() -> float:
        return await asyncio.wait_for(round_trip(), timeout)

    try:
        elapsed = async_to_sync(bounded)()
    except TimeoutError as error:
        raise CheckFailed(f"channel layer round trip timed out after {timeout:g} s") from error
    except CheckFailed:
        raise
    except Exception as error:
        raise CheckFailed(f"channel layer {type(layer).__name__} failed: {error}") from error
    return Measurement(round(elapsed, 2), f"{type(layer).__name__} round trip in {elapsed:.1f} ms")


@register("queue_backlog", label="Queue backlog", unit="tasks", warning=100, critical=1000)
def check_queue_backlog(context: CheckContext) -> Measurement:
    import redis

    from vpnmerger.celery import app

    url = broker_url()
    if not broker_is_redis(url):
        raise Skip("queue length is read only from a Redis broker")
    queues = sorted({queue.name for queue in app.conf.task_queues or []} or {app.conf.task_default_queue})
    timeout = monitoring_setting("CHECK_TIMEOUT")
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        lengths = {queue: client.llen(queue) for queue in queues}
    except redis.RedisError as error:
        raise CheckFailed(f"cannot read queue lengths from {_redacted(url)}: {error}") from error
    finally:
        client.close()
    total = sum(lengths.values())
    detail = ", ".join(f"{name} {length}" for name, length in lengths.items())
    return Measurement(total, f"{total} waiting ({detail})")


@register(
    "source_success_rate",
    label="Source success rate",
    unit="%",
    warning=80,
    critical=50,
    higher_is_worse=False,
)
def check_source_success_rate(context: CheckContext) -> Measurement:
    run = (
        MergeRun.objects.filter(status=MergeRun.Status.SUCCEEDED, finished_at__isnull=False)
        .filter(Q(sources_ok__gt=0) | Q(sources_failed__gt=0))
        .order_by("-finished_at")
        .first()
    )
    if run is None:
        raise Skip("no completed merge with sources yet")
    total = run.sources_ok + run.sources_failed
    rate = 100.0 * run.sources_ok / total
    return Measurement(round(rate, 1), f"{run.sources_ok} of {total} sources fetched in run #{run.pk}")


@register("failing_sources", label="Sources failing repeatedly", unit="sources", warning=1)
def check_failing_sources(context: CheckContext) -> Measurement:
    limit = monitoring_setting("BREAKER_FAILURES")
    failing = list(
        Source.objects.filter(enabled=True, consecutive_failures__gte=limit).values_list("name", flat=True)[
            :20
        ]
    )
    if not failing:
        return Measurement(0, f"no enabled source has failed {limit} times in a row")
    return Measurement(len(failing), f"failed {limit}+ times in a row: {', '.join(failing)}")


@register("merge_freshness", label="Age of the last merge", unit="s", warning=6 * 3600, critical=24 * 3600)
def check_merge_freshness(context: CheckContext) -> Measurement:
    last = (
        MergeRun.objects.filter(status=MergeRun.Status.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("pk", "finished_at")
        .first()
    )
    if last is None:
        if not Source.objects.filter(enabled=True).exists():
            raise Skip("no merge has completed and no source is enabled")
        return Measurement(None, "no merge has completed yet; run `manage.py merge`", status="warning")
    age = max(0.0, (context.now - last[1]).total_seconds())
    return Measurement(round(age, 1), f"run #{last[0]} finished {_format_age(age)} ago")


@register("merge_duration", label="Duration of the last merge", unit="s", warning=15 * 60, critical=30 * 60)
def check_merge_duration(context: CheckContext) -> Measurement:
    run = (
        MergeRun.objects.filter(
            status=MergeRun.Status.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False
        )
        .order_by("-finished_at")
        .first()
    )
    if run is None:
        raise Skip("no completed merge yet")
    return Measurement(round(run.duration or 0.0, 2), f"run #{run.pk} took {run.duration:.1f} s")


@register("stuck_runs", label="Stuck merge runs", unit="runs", warning=1)
def check_stuck_runs(context: CheckContext) -> Measurement:
    count = stuck_runs(context.now).count()
    if not count:
        return Measurement(0, "no running merge has lost its heartbeat")
    timeout = settings.VPNMERGER["HEARTBEAT_TIMEOUT"]
    return Measurement(count, f"{count} running merge(s) without a heartbeat for over {timeout} s")


def stuck_runs(now):
    """Return running MergeRuns whose last heartbeat (or start) is older than HEARTBEAT_TIMEOUT."""
    cutoff = now - timedelta(seconds=settings.VPNMERGER["HEARTBEAT_TIMEOUT"])
    return (
        MergeRun.objects.filter(status=MergeRun.Status.RUNNING)
        .annotate(last_sign=Coalesce(F("heartbeat_at"), F("started_at"), F("created_at")))
        .filter(last_sign__lt=cutoff)
    )


def _format_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _redacted(url: str) -> str:
    """Return the URL without its password, because check messages are stored and shown."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
