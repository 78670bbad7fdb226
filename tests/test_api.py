"""REST API v1: authentication, the OpenAPI schema, runs, sources, configuration and exports."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import Resolver404, resolve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from merger import operations, services
from merger.models import MergeRun, MergeSettings, Source
from tests.conftest import SAMPLES_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("carol", password="correct horse battery", is_staff=True)


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_anonymous_request_refused():
    assert APIClient().get("/api/v1/status/").status_code in (401, 403)


def test_token_authentication(user):
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/v1/status/")
    assert response.status_code == 200
    assert response.json()["nodes_total"] == 0


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    # --fail-on-warn turns every drf-spectacular warning and error into a failure.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    assert "/api/v1/runs/" in target.read_text()


def test_every_schema_path_resolves(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert len(schema["paths"]) >= 10
    for path in schema["paths"]:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        try:
            resolve(concrete)
        except Resolver404:
            pytest.fail(f"schema path {path} does not resolve")


def test_readiness_reports_ready(api):
    response = api.get("/api/v1/ready/")
    assert response.status_code == 200
    assert response.json()["pending_migrations"] == []


def test_start_merge_returns_run_id(api, monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    monkeypatch.setattr(operations, "run_in_background", operations.execute)
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/runs/")
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    detail = api.get(f"/api/v1/runs/{run_id}/").json()
    assert detail["status"] == "succeeded"
    assert detail["source_results"][0]["ok"] is True
    assert api.get("/api/v1/runs/").json()["results"][0]["id"] == run_id


def test_start_merge_without_sources_rejected(api, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = api.post("/api/v1/runs/")
    assert response.status_code == 400
    assert "No enabled sources" in response.json()["detail"]


def test_sources_crud(api):
    created = api.post("/api/v1/sources/", {"name": "a", "url": "/tmp/a.txt"}, format="json")
    assert created.status_code == 201
    source_id = created.json()["id"]
    assert (
        api.patch(f"/api/v1/sources/{source_id}/", {"enabled": False}, format="json").json()["enabled"]
        is False
    )
    assert api.get("/api/v1/sources/").json()["count"] == 1
    assert api.delete(f"/api/v1/sources/{source_id}/").status_code == 204
    assert not Source.objects.exists()


def test_source_bad_url_rejected(api):
    response = api.post("/api/v1/sources/", {"name": "a", "url": "gopher://127.0.0.1/"}, format="json")
    assert response.status_code == 400
    assert "Unsupported scheme gopher://" in response.json()["url"][0]


def test_configuration_update_validates(api):
    assert api.patch("/api/v1/configuration/", {"fetch_retries": 99}, format="json").status_code == 400
    response = api.patch("/api/v1/configuration/", {"fetch_retries": 4}, format="json")
    assert response.status_code == 200
    assert MergeSettings.load().fetch_retries == 4
    assert api.get("/api/v1/configuration/").json()["fetch_retries"] == 4


def test_exports_list_and_download(api, tmp_path, settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "EXPORT_DIR": tmp_path}
    inputs = services.inputs_from_locations([str(SAMPLES_DIR / "links.txt")])
    run = services.run_merge(inputs=inputs, trigger="test")
    files = api.get("/api/v1/exports/").json()
    names = {item["name"] for item in files}
    assert files[0]["run_id"] == run.pk
    name = sorted(names)[0]
    response = api.get(f"/api/v1/exports/{name}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (tmp_path / f"run-{run.pk}" / name).read_bytes()
    assert api.get("/api/v1/exports/..passwd/").status_code == 404


def test_cancel_finished_run_conflict(api):
    run = MergeRun.objects.create(status="succeeded")
    assert api.post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 409
