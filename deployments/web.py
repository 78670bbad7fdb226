"""The Deployments page: the history of deployments and rollbacks, and starting a dry run."""

from __future__ import annotations

import threading
from typing import Any

from django.contrib import messages
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from deployments import services
from deployments.models import Deployment
from vpnmerger.access import operator_required

HISTORY_ROWS = 30
# Service functions that start a dry run, tried in order; each takes the keyword arguments below.


def deployment_payload(deployment: Deployment) -> dict[str, Any]:
    steps = deployment.steps or []
    finished = sum(1 for step in steps if step.get("status") in ("succeeded", "failed", "skipped"))
    return {
        "id": deployment.pk,
        "kind": deployment.kind,
        "version": deployment.version,
        "status": deployment.status,
        "dry_run": deployment.dry_run,
        "started_by": deployment.started_by,
        "created_at": deployment.created_at.isoformat(),
        "duration": deployment.duration,
        "steps_done": finished,
        "steps_total": max(len(steps), len(deployment.plan or [])),
        "steps": steps,
        "error": deployment.error[:500],
    }


@operator_required
@require_GET
def deployments_page(request: HttpRequest) -> HttpResponse:
    history = list(Deployment.objects.order_by("-created_at", "-pk")[:HISTORY_ROWS])
    context = {"tab": "deployments", "deployments": history}
    return render(request, "deployments/deployments.html", context)


@operator_required
@require_GET
def deployments_json(request: HttpRequest) -> JsonResponse:
    history = Deployment.objects.order_by("-created_at", "-pk")[:HISTORY_ROWS]
    return JsonResponse({"deployments": [deployment_payload(row) for row in history]})


@operator_required
@require_POST
def start_dry_run(request: HttpRequest) -> HttpResponse:
    started_by = f"{request.user.get_username()} (web)"
    # A dry run checks the currently installed version; it changes nothing but its own record.
    version = request.POST.get("version", "").strip()[:100] or services.current_version() or "dry-run"

    def work() -> None:
        try:
            services.start_deployment(version, dry_run=True, started_by=started_by)
        finally:
            close_old_connections()

    # The steps publish deployment.progress events, which the page follows live.
    threading.Thread(target=work, name="deployment-dry-run", daemon=True).start()
    messages.success(request, _("Dry run started; its steps appear below as they run."))
    return redirect("deployments")


urlpatterns = [
    path("deployments/", deployments_page, name="deployments"),
    path("deployments.json", deployments_json, name="deployments-json"),
    path("deployments/dry-run/", start_dry_run, name="deployment-dry-run"),
]
