"""REST API v1 of the merger app: runs, sources, configuration, exports and starting a merge."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import audit, operations, services
from .forms import validate_headers, validate_source_url
from .models import MergeRun, MergeSettings, Source, SourceResult


class SourceResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceResult
        fields = [
            "label", "url", "ok", "http_status", "not_modified", "error", "format", "entries", "nodes",
            "invalid", "invalid_reasons", "size", "elapsed_ms", "stale",
        ]  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = MergeRun
        fields = [
            "id", "status", "trigger", "created_at", "started_at", "finished_at", "stage", "progress",
            "sources_ok", "sources_failed", "links_seen", "invalid", "duplicates", "unique", "per_protocol",
            "error", "cancel_requested",
        ]  # fmt: skip
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    source_results = SourceResultSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "invalid_reasons", "export_skipped", "source_results"]
        read_only_fields = fields


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Source
        fields = [
            "id", "name", "url", "enabled", "user_agent", "headers", "notes", "last_fetched_at", "last_ok_at",
            "last_error", "last_node_count", "consecutive_failures",
        ]  # fmt: skip
        read_only_fields = [
            "last_fetched_at",
            "last_ok_at",
            "last_error",
            "last_node_count",
            "consecutive_failures",
        ]
        # The web form's rules, so both doors reject the same values.
        extra_kwargs = {
            "url": {"validators": [validate_source_url]},
            "headers": {"validators": [validate_headers]},
        }


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField()
    run_id = serializers.IntegerField(allow_null=True)


class MergeSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = MergeSettings
        fields = [
            "fetch_concurrency",
            "fetch_timeout",
            "fetch_retries",
            "fetch_max_bytes",
            "user_agent",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Merge runs, newest first; POST starts a merge of every enabled source and returns its id."""

    queryset = MergeRun.objects.order_by("-created_at", "-id")

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("source_results")
        return queryset

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "MergeStarted", {"run_id": serializers.IntegerField(), "created": serializers.BooleanField()}
            ),
            400: inline_serializer("MergeRejected", {"detail": serializers.CharField()}),
        },
    )
    def create(self, request: Request) -> Response:
        try:
            started = operations.start("merge", trigger="api")
        except operations.OperationError as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"run_id": started.run.pk, "created": started.created}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        request=None, responses={200: RunSerializer, 409: OpenApiResponse(description="already ended")}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not operations.cancel(run):
            return Response(
                {"detail": f"run {run.pk} already ended as {run.status}"}, status=status.HTTP_409_CONFLICT
            )
        run.refresh_from_db()
        return Response(RunSerializer(run).data)


class SourceViewSet(viewsets.ModelViewSet):
    """Subscription sources; every change is recorded in the configuration history."""

    queryset = Source.objects.order_by("name")
    serializer_class = SourceSerializer
    audited_fields = ["name", "url", "enabled", "user_agent", "headers", "notes"]

    def perform_create(self, serializer: SourceSerializer) -> None:
        with transaction.atomic():
            source = serializer.save()
            audit.record_change(self.request.user, source, "added")

    def perform_update(self, serializer: SourceSerializer) -> None:
        before = audit.snapshot(serializer.instance, self.audited_fields)
        with transaction.atomic():
            source = serializer.save()
            audit.record_change(self.request.user, source, "changed", before)

    def perform_destroy(self, instance: Source) -> None:
        with transaction.atomic():
            audit.record_change(self.request.user, instance, "deleted")
            instance.delete()


class ConfigurationView(APIView):
    """The merge settings: read them, or change some of them (PATCH) or all (PUT)."""

    @extend_schema(responses=MergeSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(MergeSettingsSerializer(MergeSettings.load()).data)

    @extend_schema(request=MergeSettingsSerializer, responses=MergeSettingsSerializer)
    def put(self, request: Request) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=MergeSettingsSerializer, responses=MergeSettingsSerializer)
    def patch(self, request: Request) -> Response:
        return self._update(request, partial=True)

    def _update(self, request: Request, *, partial: bool) -> Response:
        row = MergeSettings.load()
        before = audit.snapshot(row, [f for f in MergeSettingsSerializer.Meta.fields if f != "updated_at"])
        serializer = MergeSettingsSerializer(row, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save()
            audit.record_change(request.user, row, "changed", before)
        return Response(serializer.data)


class ExportViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The export files of the latest succeeded merge, and downloading one of them."""

    lookup_value_regex = r"[A-Za-z0-9._-]+"
    pagination_class = None

    serializer_class = ExportFileSerializer

    def list(self, request: Request) -> Response:
        folder, run_id = _current_exports()
        files = [] if folder is None else sorted(path for path in folder.iterdir() if path.is_file())
        return Response(
            [{"name": path.name, "size": path.stat().st_size, "run_id": run_id} for path in files]
        )

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def retrieve(self, request: Request, pk: str | None = None) -> FileResponse:
        folder, _run_id = _current_exports()
        # Only names listed in the folder are served, so no path can leave it.
        if folder is None or pk not in {path.name for path in folder.iterdir() if path.is_file()}:
            raise Http404(f"no export named {pk!r} in the current exports; list them at /api/v1/exports/")
        return FileResponse((folder / pk).open("rb"), as_attachment=True, filename=pk)


def _current_exports() -> tuple[Path | None, int | None]:
    folder = services.current_export_dir()
    if folder is None:
        return None, None
    run_id = MergeRun.objects.filter(export_dir=str(folder)).values_list("pk", flat=True).first()
    return folder, run_id
