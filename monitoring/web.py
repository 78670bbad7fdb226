"""The Monitoring page: live CPU, memory and disk, the latest health checks and the open alerts."""

from __future__ import annotations

import psutil
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from monitoring import alerts, snapshots
from monitoring.checks import registered_checks
from monitoring.models import Alert
from vpnmerger.access import operator_required

# The charts start with the stored samples of the last hour, then add live points.
HISTORY_HOURS = 1.0
SYSTEM_CHECKS = ("cpu", "memory", "disk")


def system_usage() -> dict[str, float | str]:
    """Return CPU, memory and disk use in percent now; disk is the volume holding the data folder."""
    return {
        "time": timezone.now().isoformat(),
        # interval=None compares with the previous call, so polling every few seconds costs nothing.
        "cpu": psutil.cpu_percent(interval=None),
        "memory": psutil.virtual_memory().percent,
        "disk": psutil.disk_usage(str(settings.VAR_DIR)).percent,
    }


@operator_required
@require_GET
def monitoring_page(request: HttpRequest) -> HttpResponse:
    snapshot = snapshots.latest_snapshot()
    specs = registered_checks()
    checks = []
    if snapshot is not None:
        for sample in snapshot.samples.all():
            spec = specs.get(sample.name)
            checks.append(
                {
                    "name": sample.name,
                    "label": spec.label if spec else sample.name,
                    "unit": spec.unit if spec else "",
                    "status": sample.status,
                    "value": sample.value,
                    "message": sample.message,
                }
            )
    history = {
        name: [
            [taken_at.isoformat(), value]
            for taken_at, value in snapshots.trend_series(name, hours=HISTORY_HOURS)
        ]
        for name in SYSTEM_CHECKS
    }
    context = {
        "tab": "monitoring",
        "snapshot": snapshot,
        "checks": checks,
        "alerts": alerts.open_alerts()[:50],
        "history": history,
    }
    return render(request, "monitoring/monitoring.html", context)


@operator_required
@require_GET
def metrics_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(system_usage())


@operator_required
@require_GET
def alerts_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"alerts": [alerts.alert_payload(alert) for alert in alerts.open_alerts()[:50]]})


@operator_required
@require_POST
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    try:
        alert = alerts.acknowledge_alert(alert_id, request.user)
    except Alert.DoesNotExist:
        messages.error(request, _("Alert #%(id)s not found; it may have been deleted.") % {"id": alert_id})
        return redirect("monitoring")
    messages.success(request, _("Alert %(title)s acknowledged.") % {"title": alert.title})
    return redirect("monitoring")


@operator_required
@require_POST
def run_checks_now(request: HttpRequest) -> HttpResponse:
    snapshot = snapshots.take_snapshot()
    messages.success(request, _("Health checks ran: %(status)s.") % {"status": snapshot.status})
    return redirect("monitoring")


urlpatterns = [
    path("monitoring/", monitoring_page, name="monitoring"),
    path("monitoring/metrics.json", metrics_json, name="monitoring-metrics"),
    path("monitoring/alerts.json", alerts_json, name="monitoring-alerts"),
    path("monitoring/alerts/<int:alert_id>/acknowledge/", acknowledge, name="alert-acknowledge"),
    path("monitoring/checks/run/", run_checks_now, name="monitoring-run-checks"),
]
