"""REST API v1 of the deployments app: the deployment history (read only)."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from deployments.models import Deployment


class DeploymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Deployment
        fields = [
            "id", "kind", "version", "previous_version", "status", "dry_run", "started_by", "created_at",
            "started_at", "finished_at", "steps", "plan", "error",
        ]  # fmt: skip
        read_only_fields = fields


class DeploymentViewSet(viewsets.ReadOnlyModelViewSet):
    """Deployments, dry runs and rollbacks, newest first, with every step."""

    queryset = Deployment.objects.order_by("-created_at", "-pk")
    serializer_class = DeploymentSerializer
