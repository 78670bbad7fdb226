"""The web pages: login required everywhere, forms that reject bad values, bounded queries."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from merger import operations
from merger.models import MergeRun, MergeSettings, Node, OutputProfile, Source
from tests.conftest import SAMPLES_DIR

pytestmark = pytest.mark.django_db

# Pages reachable without a session: the login page, the token-guarded subscription and the
# metrics endpoint (guarded by its own setting), and the admin (which has its own login).
PUBLIC_PREFIXES = ("accounts/login/", "sub/", "metrics", "admin/")


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct horse battery", is_staff=True)


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def inline_runs(monkeypatch):
    """Run background operations inside the request, so tests see the finished run."""
    monkeypatch.setattr(operations, "run_in_background", operations.execute)


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str:
    """Turn a route into a URL, filling each converter or regex group with 1."""
    if "^" in route:
        route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "1", route)
        route = route.replace("^", "").replace("$", "").replace("\\", "")
    else:
        route = re.sub(r"<[^>]+>", "1", route)
    return "/" + route


def test_every_url_rejects_anonymous_requests(client):
    checked = 0
    for route in _walk(get_resolver().url_patterns):
        if "format>" in route:
            continue  # The router's ".json" twins of the routes checked here.
        url = _concrete(route)
        if url.lstrip("/").startswith(PUBLIC_PREFIXES):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            checked += 1
            if response.status_code == 302:
                assert response["Location"].startswith(reverse("login")), (
                    f"{method} {url} -> {response['Location']}"
                )
            else:
                assert response.status_code in (401, 403, 405), (
                    f"{method} {url} answered {response.status_code}"
                )
    assert checked > 40


def test_login_page_logs_in_and_redirects(client, user):
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_login_rejects_wrong_password(client, user):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_password_change_page_renders(logged_in):
    response = logged_in.get(reverse("password_change"))
    assert response.status_code == 200
    assert b"new_password1" in response.content


def test_every_tab_renders(logged_in):
    for name in ("dashboard", "operations", "monitoring", "configuration", "sources", "deployments"):
        response = logged_in.get(reverse(name))
        assert response.status_code == 200, name
        assert b'name="viewport"' in response.content


def test_dashboard_queries_bounded(logged_in, django_assert_max_num_queries):
    Source.objects.bulk_create(Source(name=f"source {index}", url=f"/tmp/{index}.txt") for index in range(60))
    MergeRun.objects.bulk_create(MergeRun(status="succeeded", unique=index) for index in range(40))
    Node.objects.bulk_create(
        Node(
            fingerprint=f"{index:032x}",
            protocol=("vless", "trojan", "ss")[index % 3],
            host="127.0.0.1",
            port=1000 + index,
            link="x",
            alive=index % 2 == 0,
            latency_ms=index % 900,
        )
        for index in range(1500)
    )
    with django_assert_max_num_queries(8):
        response = logged_in.get(reverse("dashboard"))
    assert response.status_code == 200
    assert response.context["nodes"]["total"] == 1500
    assert response.context["nodes"]["alive"] == 750
    with django_assert_max_num_queries(8):
        assert logged_in.get(reverse("sources")).status_code == 200
    with django_assert_max_num_queries(8):
        assert logged_in.get(reverse("operations")).status_code == 200


def test_dashboard_json_histogram_counts(logged_in):
    Node.objects.bulk_create(
        [
            Node(fingerprint="a" * 32, protocol="vless", host="127.0.0.1", port=1, link="x", latency_ms=10),
            Node(fingerprint="b" * 32, protocol="vless", host="127.0.0.1", port=2, link="x", latency_ms=120),
            Node(fingerprint="c" * 32, protocol="ss", host="127.0.0.1", port=3, link="x", latency_ms=5000),
            Node(fingerprint="d" * 32, protocol="ss", host="127.0.0.1", port=4, link="x"),
        ]
    )
    latency = logged_in.get(reverse("dashboard-json")).json()["nodes"]["latency"]
    # Buckets: <50, 50-100, 100-200, 200-400, 400-800, 800-1600, >=1600; untested nodes are left out.
    assert latency["counts"] == [1, 0, 1, 0, 0, 0, 1]


def test_source_form_rejects_unsupported_scheme(logged_in):
    response = logged_in.post(
        reverse("source-new"), {"name": "ftp one", "url": "ftp://127.0.0.1/x", "headers": "{}"}
    )
    assert response.status_code == 200
    assert "Unsupported scheme ftp://" in response.content.decode()
    assert not Source.objects.exists()


def test_source_form_rejects_headers_not_strings(logged_in):
    response = logged_in.post(
        reverse("source-new"), {"name": "one", "url": "/tmp/x.txt", "headers": '{"a": 1}'}
    )
    assert "Headers must be a JSON object of strings" in response.content.decode()


def test_source_add_edit_toggle_recorded(logged_in, user):
    response = logged_in.post(
        reverse("source-new"), {"name": "local", "url": "/tmp/a.txt", "headers": "{}", "enabled": "on"}
    )
    assert response.status_code == 302
    source = Source.objects.get(name="local")
    logged_in.post(reverse("source-toggle", args=[source.pk]))
    source.refresh_from_db()
    assert source.enabled is False
    entries = list(LogEntry.objects.order_by("action_time").values_list("user_id", "change_message"))
    assert entries[0] == (user.pk, "added")
    assert entries[1] == (user.pk, "enabled: True -> False")


def test_source_test_now_reports_counts(logged_in):
    source = Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    response = logged_in.post(reverse("source-test", args=[source.pk]))
    check = response.context["check"]
    assert check.ok, check.error
    assert check.nodes > 0
    assert check.entries >= check.nodes


def test_source_test_now_shows_fetch_error(logged_in, tmp_path):
    source = Source.objects.create(name="missing", url=str(tmp_path / "absent.txt"))
    response = logged_in.post(reverse("source-test", args=[source.pk]))
    assert response.context["check"].ok is False
    assert response.context["check"].error


def test_merge_settings_reject_out_of_range(logged_in):
    current = MergeSettings.load()
    data = {
        "fetch_concurrency": 500,
        "fetch_timeout": 0.1,
        "fetch_retries": 2,
        "fetch_max_bytes": 10,
        "user_agent": "x",
    }
    response = logged_in.post(reverse("configuration"), data)
    content = response.content.decode()
    assert "Ensure this value is less than or equal to 64." in content
    assert "Ensure this value is greater than or equal to 1.0." in content
    assert "Ensure this value is greater than or equal to 1024." in content
    current.refresh_from_db()
    assert current.fetch_concurrency != 500


def test_merge_settings_change_recorded(logged_in, user):
    row = MergeSettings.load()
    data = {
        "fetch_concurrency": 3,
        "fetch_timeout": row.fetch_timeout,
        "fetch_retries": row.fetch_retries,
        "fetch_max_bytes": row.fetch_max_bytes,
        "user_agent": row.user_agent,
    }
    assert logged_in.post(reverse("configuration"), data).status_code == 302
    row.refresh_from_db()
    assert row.fetch_concurrency == 3
    entry = LogEntry.objects.get()
    assert entry.user_id == user.pk
    assert entry.change_message.startswith("fetch_concurrency: ")
    assert entry.change_message.endswith("-> 3")


def _profile_data(**changes):
    data = {
        "name": "phone",
        "default_format": "base64",
        "sort": "score",
        "userinfo_policy": "first",
        "update_interval_hours": 12,
        "protocols": "vless, trojan",
        "ports": "443",
        "regions": "de",
    }
    data.update(changes)
    return data


def test_profile_form_saves_lists(logged_in):
    assert logged_in.post(reverse("profile-new"), _profile_data()).status_code == 302
    profile = OutputProfile.objects.get(name="phone")
    assert profile.protocols == ["vless", "trojan"]
    assert profile.ports == [443]
    assert profile.regions == ["DE"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("include_regex", "([a-z", "Invalid regular expression ([a-z"),
        ("ports", "443, 70000", "Invalid port 70000"),
        ("protocols", "vless, telnet", "Unknown protocol telnet"),
        ("regions", "Germany", "Invalid region GERMANY"),
        ("rename_template", "{nope}", "Invalid rename template {nope}"),
    ],
)
def test_profile_form_rejects_bad_value(logged_in, field, value, message):
    response = logged_in.post(reverse("profile-new"), _profile_data(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not OutputProfile.objects.exists()


def test_start_merge_returns_run_id(logged_in, inline_runs, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            reverse("operation-start"), {"operation": "merge"}, HTTP_ACCEPT="application/json"
        )
    assert response.status_code == 202
    run = MergeRun.objects.get(pk=response.json()["run_id"])
    assert run.status == MergeRun.Status.SUCCEEDED
    assert run.unique > 0
    log = logged_in.get(reverse("run-json", args=[run.pk])).json()["log"]
    assert any("stage fetch started" in line for line in log)
    assert any(line.endswith(" invalid") and "succeeded" in line for line in log)


def test_start_merge_without_sources_explains(logged_in, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    response = logged_in.post(reverse("operation-start"), {"operation": "merge"}, follow=True)
    assert "No enabled sources" in response.content.decode()
    assert not MergeRun.objects.exists()


def test_start_rejects_unknown_operation(logged_in):
    response = logged_in.post(
        reverse("operation-start"), {"operation": "reboot"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400
    assert "Unknown operation 'reboot'" in response.json()["error"]


def test_cancel_pending_run(logged_in):
    run = MergeRun.objects.create(trigger="web")
    response = logged_in.post(reverse("run-cancel", args=[run.pk]), HTTP_ACCEPT="application/json")
    assert response.json()["cancel_requested"] is True
    run.refresh_from_db()
    assert run.status == MergeRun.Status.CANCELLED


def test_cancel_finished_run_refused(logged_in):
    run = MergeRun.objects.create(trigger="web", status="succeeded")
    response = logged_in.post(reverse("run-cancel", args=[run.pk]), HTTP_ACCEPT="application/json")
    assert response.json()["cancel_requested"] is False


def test_pages_reject_wrong_method(logged_in):
    assert logged_in.get(reverse("operation-start")).status_code == 405
    assert logged_in.post(reverse("dashboard")).status_code == 405


def test_alert_acknowledge(logged_in, user):
    from monitoring.models import Alert

    alert = Alert.objects.create(
        key="check:disk", check_name="disk", severity="warning", title="Disk filling up"
    )
    response = logged_in.post(reverse("alert-acknowledge", args=[alert.pk]))
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == user


def test_monitoring_metrics_json(logged_in):
    data = logged_in.get(reverse("monitoring-metrics")).json()
    for key in ("cpu", "memory", "disk"):
        assert 0 <= data[key] <= 100
