"""Environment checks in settings.py, MergeSettings validation, static files without collectstatic, admin."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from merger.models import MergeRun, MergeSettings, ProbeResult

pytestmark = pytest.mark.django_db

REPO_DIR = Path(__file__).resolve().parent.parent

# (variable, bad value, text the error must contain)
BAD_ENVIRONMENT = [
    ("DATABASE_URL", "notaurl", "DATABASE_URL must be a URL with the scheme sqlite, postgres"),
    ("DATABASE_URL", "postgres://h:notaport/test", "DATABASE_URL has an invalid port"),
    ("DATABASE_URL", "postgres://h:70000/test", "DATABASE_URL has an invalid port"),
    ("DATABASE_URL", "redis://127.0.0.1:6379/0", "DATABASE_URL must be a URL with the scheme"),
    (
        "VPNMERGER_FETCH_TIMEOUT",
        "abc",
        "VPNMERGER_FETCH_TIMEOUT must be a number of seconds from 1 to 300, got 'abc'",
    ),
    ("VPNMERGER_FETCH_TIMEOUT", "0", "VPNMERGER_FETCH_TIMEOUT must be a number of seconds"),
    (
        "VPNMERGER_FETCH_RETRIES",
        "1.5",
        "VPNMERGER_FETCH_RETRIES must be a whole number from 0 to 10, got '1.5'",
    ),
    ("VPNMERGER_FETCH_RETRIES", "-1", "VPNMERGER_FETCH_RETRIES must be a whole number"),
    ("VPNMERGER_FETCH_CONCURRENCY", "0", "VPNMERGER_FETCH_CONCURRENCY must be a whole number from 1 to 64"),
    ("VPNMERGER_FETCH_MAX_BYTES", "-5", "VPNMERGER_FETCH_MAX_BYTES must be a whole number of bytes"),
    ("VPNMERGER_PROBE_TIMEOUT", "0", "VPNMERGER_PROBE_TIMEOUT must be a number of seconds greater than 0"),
    ("DEBUG", "maybe", "DEBUG must be one of true/false/1/0/yes/no/on/off, got 'maybe'"),
]


def run_check(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VPNMERGER_VAR_DIR": str(tmp_path), **variables}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("name", "value", "message"), BAD_ENVIRONMENT)
def test_check_rejects_bad_environment(tmp_path, name, value, message):
    result = run_check(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_check_accepts_valid_environment(tmp_path):
    result = run_check(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="Off",
        VPNMERGER_FETCH_TIMEOUT="2.5",
        VPNMERGER_FETCH_RETRIES="0",
        VPNMERGER_FETCH_CONCURRENCY="4",
        VPNMERGER_FETCH_MAX_BYTES="4096",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fetch_concurrency", 0),
        ("fetch_timeout", 0.0),
        ("fetch_timeout", -1.0),
        ("fetch_retries", -1),
        ("fetch_max_bytes", 0),
    ],
)
def test_merge_settings_validators_reject_bad_values(field, value):
    row = MergeSettings(
        fetch_concurrency=8, fetch_timeout=15.0, fetch_retries=2, fetch_max_bytes=1024 * 1024, user_agent="x"
    )
    row.full_clean()
    setattr(row, field, value)
    with pytest.raises(ValidationError) as caught:
        row.full_clean()
    assert field in caught.value.message_dict


def test_merge_settings_load_rejects_bad_seed_and_stores_nothing(settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "FETCH_CONCURRENCY": 0}
    with pytest.raises(ValidationError) as caught:
        MergeSettings.load()
    assert "fetch_concurrency" in caught.value.message_dict
    assert not MergeSettings.objects.exists()


def test_merge_settings_load_seeds_valid_values(settings):
    settings.VPNMERGER = {**settings.VPNMERGER, "FETCH_RETRIES": 5}
    assert MergeSettings.load().fetch_retries == 5
    assert MergeSettings.objects.get(pk=1).fetch_retries == 5


def test_static_css_served_without_collectstatic(client, tmp_path):
    base = (REPO_DIR / "templates" / "base.html").read_text()
    assert "{% static 'css/app.css' %}" in base
    empty_root = tmp_path / "static"
    empty_root.mkdir()
    with override_settings(DEBUG=False, STATIC_ROOT=empty_root):
        response = client.get("/static/css/app.css")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body == (REPO_DIR / "static" / "css" / "app.css").read_bytes()


def test_admin_merge_run_duration_rounded():
    started = timezone.now()
    run = MergeRun(started_at=started, finished_at=started + timedelta(seconds=11.892878))
    model_admin = admin.site._registry[MergeRun]
    assert model_admin.duration(run) == "11.9 s"
    assert model_admin.duration(MergeRun()) is None


def test_admin_offers_no_add_for_results(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    assert admin.site._registry[MergeRun].has_add_permission(request) is False
    assert admin.site._registry[ProbeResult].has_add_permission(request) is False
    inline = admin.site._registry[MergeRun].get_inline_instances(request)
    assert inline
    assert all(instance.has_add_permission(request, None) is False for instance in inline)


def test_admin_merge_run_list_shows_duration(admin_client):
    started = timezone.now()
    MergeRun.objects.create(started_at=started, finished_at=started + timedelta(seconds=11.892878))
    response = admin_client.get("/admin/merger/mergerun/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "11.9 s" in page
    assert "11.892878" not in page
