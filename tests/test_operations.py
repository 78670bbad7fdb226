"""Probe and export runs started from the operations page, and what they leave served."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from merger import operations, profiles, services
from merger.core import pipeline
from merger.models import MergeRun, Node, ProbeResult
from tests.conftest import SAMPLES_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user("bob", password="another horse battery", is_staff=True)
    )
    return client


@pytest.fixture
def merged(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VPNMERGER = {**settings.VPNMERGER, "EXPORT_DIR": tmp_path / "exports", "PROBE_TIMEOUT": 0.5}
    return services.run_merge(inputs=services.inputs_from_locations([str(SAMPLES_DIR / "links.txt")]))


def _start(client, operation: str, capture) -> MergeRun:
    with capture(execute=True):
        response = client.post(
            reverse("operation-start"), {"operation": operation}, HTTP_ACCEPT="application/json"
        )
    assert response.status_code == 202
    return MergeRun.objects.get(pk=response.json()["run_id"])


def test_probe_run_checks_stored_nodes(logged_in, merged, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(operations, "run_in_background", operations.execute)
    before = ProbeResult.objects.count()

    run = _start(logged_in, "probe", django_capture_on_commit_callbacks)

    run.refresh_from_db()
    assert run.kind == MergeRun.Kind.PROBE
    assert run.status == MergeRun.Status.SUCCEEDED, run.error
    assert ProbeResult.objects.count() > before
    # Nothing listens on the sample addresses, so every testable node is dead.
    assert run.alive == 0
    assert run.probed > 0


def test_probe_run_does_not_change_served_run(
    logged_in, merged, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(operations, "run_in_background", operations.execute)

    _start(logged_in, "probe", django_capture_on_commit_callbacks)

    assert profiles.served_run() == merged
    assert services.current_export_dir() == Path(merged.export_dir)
    assert Node.objects.filter(last_run=merged).count() == merged.unique


def test_export_run_writes_every_format(logged_in, merged, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(operations, "run_in_background", operations.execute)

    run = _start(logged_in, "export", django_capture_on_commit_callbacks)

    run.refresh_from_db()
    assert run.status == MergeRun.Status.SUCCEEDED, run.error
    assert run.unique == merged.unique
    for file_name in pipeline.EXPORT_FILES.values():
        assert (Path(run.export_dir) / file_name).stat().st_size > 0
    assert profiles.served_run() == merged


def test_export_before_any_merge_fails_with_reason(
    logged_in, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(operations, "run_in_background", operations.execute)

    run = _start(logged_in, "export", django_capture_on_commit_callbacks)

    run.refresh_from_db()
    assert run.status == MergeRun.Status.FAILED
    assert "run a merge first" in run.error


def test_dry_run_button_records_deployment(logged_in, monkeypatch):
    from deployments import web
    from deployments.models import Deployment

    class InlineThread:
        def __init__(self, target, name, daemon):
            self.target = target

        def start(self):
            self.target()

    monkeypatch.setattr(web.threading, "Thread", InlineThread)
    # The thread closes its own connection when it ends; run inline, that would be the test's.
    monkeypatch.setattr(web, "close_old_connections", lambda: None)
    response = logged_in.post(reverse("deployment-dry-run"), {"version": "1.2.3"})

    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert deployment.version == "1.2.3"
    assert deployment.dry_run is True
    assert "bob" in deployment.started_by
    assert deployment.status not in ("pending", "running")


@pytest.fixture
def plain_user_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="plain user password"))
    return client


@pytest.mark.parametrize("name", ["dashboard", "operations", "sources", "deployments"])
def test_pages_refuse_signed_in_non_staff(plain_user_client, name):
    assert plain_user_client.get(reverse(name)).status_code == 403


def test_api_refuses_signed_in_non_staff(plain_user_client):
    assert plain_user_client.get("/api/v1/sources/").status_code == 403


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_signed_in_non_staff(django_user_model):
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from merger.consumers import RunsConsumer

    user = await sync_to_async(django_user_model.objects.create_user)("mallory", password="plain user pw")
    communicator = WebsocketCommunicator(RunsConsumer.as_asgi(), "/ws/runs/")
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    assert connected is False
    assert code == 4401
    await communicator.disconnect()
