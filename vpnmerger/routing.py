"""WebSocket routes: one socket per event topic."""

from django.urls import path

from deployments.consumers import DeploymentsConsumer
from merger.consumers import RunsConsumer
from monitoring.consumers import AlertsConsumer, HealthConsumer

websocket_urlpatterns = [
    path("ws/runs/", RunsConsumer.as_asgi()),
    path("ws/health/", HealthConsumer.as_asgi()),
    path("ws/alerts/", AlertsConsumer.as_asgi()),
    path("ws/deployments/", DeploymentsConsumer.as_asgi()),
]
