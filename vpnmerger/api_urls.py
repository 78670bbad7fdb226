"""URLs of the REST API v1 and its OpenAPI schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from deployments.api import DeploymentViewSet
from merger.api import ConfigurationView, ExportViewSet, RunViewSet, SourceViewSet
from monitoring.api import HealthView, ReadinessView, StatusView

router = DefaultRouter()
router.register("runs", RunViewSet, basename="run")
router.register("sources", SourceViewSet, basename="source")
router.register("exports", ExportViewSet, basename="export")
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = [
    path("status/", StatusView.as_view(), name="api-status"),
    path("health/", HealthView.as_view(), name="api-health"),
    path("ready/", ReadinessView.as_view(), name="api-ready"),
    path("configuration/", ConfigurationView.as_view(), name="api-configuration"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include(router.urls)),
]
