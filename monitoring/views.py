"""The /metrics endpoint for Prometheus."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring.metrics import render_metrics


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the metrics when METRICS_ENABLED.

    With METRICS_TOKEN set, the request must send `Authorization: Bearer <METRICS_TOKEN>`.
    """
    if not settings.METRICS_ENABLED:
        raise Http404("metrics are disabled; set METRICS_ENABLED=true to serve them")
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = HttpResponse(
                "missing or wrong bearer token for /metrics\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
