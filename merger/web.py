"""Pages of the merger app: dashboard, operations, configuration and sources, with their JSON feeds.

Every view needs a logged-in user. The JSON feeds are the polling fallback of the live pages, used
when the WebSocket is down.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from vpnmerger.access import operator_required

from . import audit, dashboard, operations
from .forms import MergeSettingsForm, OutputProfileForm, SourceForm
from .models import MergeRun, MergeSettings, OutputProfile, Source
from .progress import run_payload

ACTIVE_STATUSES = (MergeRun.Status.PENDING, MergeRun.Status.RUNNING)


@operator_required
@require_GET
def dashboard_page(request: HttpRequest) -> HttpResponse:
    context = {
        "tab": "dashboard",
        "nodes": dashboard.node_summary(),
        "runs": dashboard.recent_runs(),
        "sources": dashboard.source_health(),
    }
    return render(request, "merger/dashboard.html", context)


@operator_required
@require_GET
def dashboard_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "nodes": dashboard.node_summary(),
            "runs": [run_payload(run) for run in dashboard.recent_runs()],
            "sources": [
                {
                    **row,
                    "last_fetched_at": _iso(row["last_fetched_at"]),
                    "last_ok_at": _iso(row["last_ok_at"]),
                }
                for row in dashboard.source_health()
            ],
        }
    )


@operator_required
@require_GET
def operations_page(request: HttpRequest) -> HttpResponse:
    current = MergeRun.objects.filter(status__in=ACTIVE_STATUSES).order_by("-created_at").first()
    context = {
        "tab": "operations",
        "runs": dashboard.recent_runs(20),
        "current": current,
        "current_log": operations.log_lines(current.pk) if current else [],
        "operations": operations.OPERATIONS,
    }
    return render(request, "merger/operations.html", context)


@operator_required
@require_POST
def start_operation(request: HttpRequest) -> HttpResponse:
    operation = request.POST.get("operation", "merge")
    try:
        started = operations.start(operation, trigger="web")
    except operations.OperationError as error:
        if _wants_json(request):
            return JsonResponse({"error": str(error)}, status=400)
        messages.error(request, str(error))
        return redirect("operations")
    run = started.run
    if _wants_json(request):
        return JsonResponse({"run_id": run.pk, "status": run.status, "created": started.created}, status=202)
    if started.created:
        messages.success(request, _("Run #%(id)s started.") % {"id": run.pk})
    else:
        messages.info(request, _("Run #%(id)s is already active; follow it below.") % {"id": run.pk})
    return redirect("operations")


@operator_required
@require_POST
def cancel_run(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(MergeRun, pk=run_id)
    cancelled = operations.cancel(run)
    if _wants_json(request):
        return JsonResponse({"run_id": run.pk, "cancel_requested": cancelled, "status": run.status})
    if cancelled:
        messages.success(request, _("Cancel requested for run #%(id)s.") % {"id": run.pk})
    else:
        messages.error(
            request, _("Run #%(id)s already ended as %(status)s.") % {"id": run.pk, "status": run.status}
        )
    return redirect("operations")


@operator_required
@require_GET
def run_json(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(MergeRun, pk=run_id)
    return JsonResponse({**run_payload(run), "log": operations.log_lines(run.pk)})


@operator_required
@require_GET
def runs_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"runs": [run_payload(run) for run in dashboard.recent_runs(20)]})


@operator_required
def configuration_page(request: HttpRequest) -> HttpResponse:
    settings_row = MergeSettings.load()
    form = MergeSettingsForm(instance=settings_row)
    if request.method == "POST":
        before = audit.snapshot(settings_row, list(MergeSettingsForm.Meta.fields))
        form = MergeSettingsForm(request.POST, instance=settings_row)
        if form.is_valid():
            with transaction.atomic():
                form.save()
                audit.record_change(request.user, settings_row, "changed", before)
            messages.success(request, _("Merge settings saved."))
            return redirect("configuration")
        messages.error(request, _("The merge settings were not saved: fix the fields marked below."))
    context = {
        "tab": "configuration",
        "form": form,
        "profiles": OutputProfile.objects.order_by("name"),
        "changes": audit.recent_changes([MergeSettings, OutputProfile, Source]),
    }
    return render(request, "merger/configuration.html", context)


@operator_required
def profile_edit(request: HttpRequest, profile_id: int | None = None) -> HttpResponse:
    profile = get_object_or_404(OutputProfile, pk=profile_id) if profile_id else None
    form = OutputProfileForm(instance=profile)
    if request.method == "POST":
        before = audit.snapshot(profile, list(OutputProfileForm.Meta.fields)) if profile else None
        form = OutputProfileForm(request.POST, instance=profile)
        if form.is_valid():
            with transaction.atomic():
                saved = form.save()
                audit.record_change(request.user, saved, "changed" if profile else "added", before)
            messages.success(request, _("Output profile %(name)s saved.") % {"name": saved.name})
            return redirect("configuration")
        messages.error(request, _("The profile was not saved: fix the fields marked below."))
    return render(
        request, "merger/profile_form.html", {"tab": "configuration", "form": form, "profile": profile}
    )


@operator_required
@require_GET
def sources_page(request: HttpRequest) -> HttpResponse:
    return render(request, "merger/sources.html", {"tab": "sources", "sources": dashboard.source_health()})


@operator_required
def source_edit(request: HttpRequest, source_id: int | None = None) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id) if source_id else None
    form = SourceForm(instance=source)
    if request.method == "POST":
        before = audit.snapshot(source, list(SourceForm.Meta.fields)) if source else None
        form = SourceForm(request.POST, instance=source)
        if form.is_valid():
            with transaction.atomic():
                saved = form.save()
                audit.record_change(request.user, saved, "changed" if source else "added", before)
            messages.success(request, _("Source %(name)s saved.") % {"name": saved.name})
            return redirect("sources")
        messages.error(request, _("The source was not saved: fix the fields marked below."))
    last_result = (
        source.results.select_related("run").order_by("-run__created_at").first() if source else None
    )
    context = {"tab": "sources", "form": form, "source": source, "last_result": last_result}
    return render(request, "merger/source_form.html", context)


@operator_required
@require_POST
def source_toggle(request: HttpRequest, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id)
    before = audit.snapshot(source, ["enabled"])
    source.enabled = not source.enabled
    with transaction.atomic():
        source.save(update_fields=["enabled", "updated_at"])
        audit.record_change(request.user, source, "changed", before)
    state = _("enabled") if source.enabled else _("disabled")
    messages.success(request, _("Source %(name)s %(state)s.") % {"name": source.name, "state": state})
    return redirect("sources")


@operator_required
@require_POST
def source_test(request: HttpRequest, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id)
    check = operations.check_source(source)
    return render(request, "merger/source_test.html", {"tab": "sources", "source": source, "check": check})


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


urlpatterns = [
    path("", dashboard_page, name="dashboard"),
    path("dashboard.json", dashboard_json, name="dashboard-json"),
    path("operations/", operations_page, name="operations"),
    path("operations/start/", start_operation, name="operation-start"),
    path("runs.json", runs_json, name="runs-json"),
    path("runs/<int:run_id>.json", run_json, name="run-json"),
    path("runs/<int:run_id>/cancel/", cancel_run, name="run-cancel"),
    path("configuration/", configuration_page, name="configuration"),
    path("configuration/profiles/new/", profile_edit, name="profile-new"),
    path("configuration/profiles/<int:profile_id>/", profile_edit, name="profile-edit"),
    path("sources/", sources_page, name="sources"),
    path("sources/new/", source_edit, name="source-new"),
    path("sources/<int:source_id>/", source_edit, name="source-edit"),
    path("sources/<int:source_id>/toggle/", source_toggle, name="source-toggle"),
    path("sources/<int:source_id>/test/", source_test, name="source-test"),
]
