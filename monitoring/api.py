"""REST API v1 of the monitoring app: service status, health checks and readiness."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from merger import dashboard
from merger.models import MergeRun
from monitoring import snapshots


class StatusView(APIView):
    """Node counts, the latest run and the overall health status in one call."""

    @extend_schema(
        responses=inline_serializer(
            "Status",
            {
                "nodes_total": serializers.IntegerField(),
                "nodes_alive": serializers.IntegerField(),
                "per_protocol": serializers.DictField(child=serializers.IntegerField()),
                "last_run": serializers.DictField(allow_null=True),
                "health": serializers.CharField(allow_null=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        nodes = dashboard.node_summary()
        last = MergeRun.objects.order_by("-created_at", "-id").first()
        snapshot = snapshots.latest_snapshot()
        return Response(
            {
                "nodes_total": nodes["total"],
                "nodes_alive": nodes["alive"],
                "per_protocol": {row["protocol"]: row["total"] for row in nodes["per_protocol"]},
                "last_run": None
                if last is None
                else {
                    "id": last.pk,
                    "status": last.status,
                    "unique": last.unique,
                    "finished_at": last.finished_at,
                },
                "health": snapshot.status if snapshot else None,
            }
        )


class HealthView(APIView):
    """The latest health snapshot with every check's status, value and message."""

    @extend_schema(
        responses=inline_serializer("Health", {"snapshot": serializers.DictField(allow_null=True)})
    )
    def get(self, request: Request) -> Response:
        snapshot = snapshots.latest_snapshot()
        return Response({"snapshot": snapshots.snapshot_payload(snapshot) if snapshot else None})


class ReadinessView(APIView):
    """200 when the database answers and every migration is applied, 503 otherwise."""

    @extend_schema(
        responses={
            200: inline_serializer(
                "Readiness",
                {
                    "ready": serializers.BooleanField(),
                    "database": serializers.BooleanField(),
                    "pending_migrations": serializers.ListField(child=serializers.CharField()),
                    "error": serializers.CharField(),
                },
            ),
            503: inline_serializer("NotReady", {"ready": serializers.BooleanField()}),
        }
    )
    def get(self, request: Request) -> Response:
        body = readiness()
        return Response(
            body, status=status.HTTP_200_OK if body["ready"] else status.HTTP_503_SERVICE_UNAVAILABLE
        )


def readiness(alias: str = DEFAULT_DB_ALIAS) -> dict[str, object]:
    """Check that the database answers a query and that no migration is left to apply."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        return {"ready": False, "database": False, "pending_migrations": [], "error": str(error)[:300]}
    pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    error = f"{len(pending)} migrations not applied: run manage.py migrate" if pending else ""
    return {"ready": not pending, "database": True, "pending_migrations": pending, "error": error}
