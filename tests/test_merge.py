"""The merge service and its commands on a real database and a real local HTTP server."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.utils import timezone

from merger import services
from merger.models import MergeRun, Node, Source, SourceResult
from tests.conftest import SAMPLES_DIR

pytestmark = pytest.mark.django_db

SAMPLE_FILES = sorted(str(path) for path in SAMPLES_DIR.iterdir())


@pytest.fixture(autouse=True)
def isolated_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VPNMERGER = {
        **settings.VPNMERGER,
        "EXPORT_DIR": tmp_path / "exports",
        "FETCH_TIMEOUT": 2.0,
        "FETCH_RETRIES": 0,
    }


def test_merge_command_from_samples_writes_exports(tmp_path):
    out = StringIO()
    args = [item for path in SAMPLE_FILES for item in ("--from", path)]
    call_command("merge", *args, "--out", str(tmp_path / "out"), "--no-probe", "--no-progress", stdout=out)

    for name in ("raw.txt", "base64.txt", "clash.yaml", "singbox.json", "nodes.csv", "report.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    run = MergeRun.objects.get()
    assert run.status == MergeRun.Status.SUCCEEDED
    assert run.sources_ok == len(SAMPLE_FILES)
    assert run.sources_failed == 0
    assert run.invalid >= 2  # the broken port lines in links.txt and clash.yaml
    assert run.duplicates >= 1  # the renamed trojan in links.txt
    # Inputs given with --from go to the exports only; stored nodes and what is served stay.
    assert run.kind == MergeRun.Kind.ADHOC
    assert Node.objects.count() == 0
    text = out.getvalue()
    assert f"unique: {run.unique}" in text
    assert "Per protocol:" in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["unique"] == run.unique


def test_merge_twice_keeps_first_seen_and_adds_origins(tmp_path):
    links = SAMPLES_DIR / "links.txt"
    first = services.run_merge(inputs=services.inputs_from_locations([str(links)]))
    node = Node.objects.get(host="127.10.0.4")
    first_seen = node.first_seen
    copy = tmp_path / "copy.txt"
    copy.write_bytes(links.read_bytes())
    second = services.run_merge(inputs=services.inputs_from_locations([str(copy)]))
    node.refresh_from_db()
    assert second.pk != first.pk
    assert node.first_seen == first_seen
    assert node.last_run_id == second.pk
    assert node.origins == [str(links), str(copy)]
    assert Node.objects.count() == first.unique


def test_merge_of_sources_over_http(http_server):
    http_server.routes["/good"] = (
        200,
        {"subscription-userinfo": "upload=1; download=2; total=30; expire=40"},
        (SAMPLES_DIR / "base64.txt").read_bytes(),
    )
    http_server.routes["/html"] = (
        200,
        {"Content-Type": "text/html"},
        b"<!doctype html><html><body>blocked</body></html>",
    )
    Source.objects.create(name="good", url=http_server.url("/good?token=secret"))
    Source.objects.create(name="missing", url=http_server.url("/missing"))
    Source.objects.create(name="html", url=http_server.url("/html"))
    Source.objects.create(name="disabled", url=http_server.url("/good"), enabled=False)

    run = services.run_merge()

    assert run.status == MergeRun.Status.SUCCEEDED
    assert run.sources_ok == 1
    assert run.sources_failed == 2
    results = {result.label: result for result in SourceResult.objects.filter(run=run)}
    assert set(results) == {"good", "missing", "html"}
    assert results["good"].format == "base64"
    assert results["good"].nodes == 5
    assert "token" not in results["good"].url
    assert results["missing"].error == "HTTP 404"
    assert "HTML page" in results["html"].error
    good = Source.objects.get(name="good")
    assert good.userinfo == {"upload": 1, "download": 2, "total": 30, "expire": 40}
    assert good.last_node_count == 5
    missing = Source.objects.get(name="missing")
    assert missing.consecutive_failures == 1
    assert missing.last_error == "HTTP 404"


def test_failed_source_uses_last_good_content_marked_stale(http_server):
    http_server.routes["/feed"] = (200, {}, (SAMPLES_DIR / "links.txt").read_bytes())
    Source.objects.create(name="feed", url=http_server.url("/feed"))
    first = services.run_merge()
    del http_server.routes["/feed"]

    second = services.run_merge()

    result = SourceResult.objects.get(run=second)
    assert result.ok
    assert result.error.startswith("stale:")
    assert second.unique == first.unique


def test_conditional_get_reuses_cached_body(http_server):
    body = (SAMPLES_DIR / "links.txt").read_bytes()
    http_server.routes["/etag"] = (200, {"ETag": '"v1"'}, body)
    Source.objects.create(name="etag", url=http_server.url("/etag"))
    first = services.run_merge()
    http_server.routes["/etag"] = (304, {"ETag": '"v1"'}, b"")

    second = services.run_merge()

    assert http_server.requests[-1][1].get("If-None-Match") == '"v1"'
    result = SourceResult.objects.get(run=second)
    assert result.not_modified
    assert result.ok
    assert second.unique == first.unique


def test_merge_without_sources_explains_what_to_do():
    with pytest.raises(CommandError, match="load_sources"):
        call_command("merge", "--no-progress")


def test_parselinks_prints_nodes_and_errors(capsysbinary):
    call_command("parselinks", str(SAMPLES_DIR / "links.txt"))
    lines = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    errors = [line for line in lines if "error" in line]
    nodes = [line for line in lines if "error" not in line]
    assert len(errors) == 1
    assert errors[0]["line"] == 11
    assert "port" in errors[0]["error"]
    assert len(nodes) == 10
    assert all(node["link"] for node in nodes)
    assert {node["protocol"] for node in nodes} >= {
        "vmess",
        "vless",
        "trojan",
        "ss",
        "hysteria2",
        "tuic",
        "socks",
    }


def test_parselinks_rejects_html(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body>hi</body></html>")
    with pytest.raises(CommandError, match="HTML page"):
        call_command("parselinks", str(page))


def test_load_sources_yaml_json_and_plain(tmp_path):
    yaml_file = tmp_path / "sources.yaml"
    yaml_file.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {"name": "one", "url": "http://127.0.0.1:9/one", "user_agent": "clash.meta"},
                    {"url": "https://127.0.0.1:9/two?token=x"},
                ]
            }
        )
    )
    json_file = tmp_path / "sources.json"
    json_file.write_text(json.dumps([{"name": "one", "url": "http://127.0.0.1:9/one-new", "enabled": False}]))
    plain_file = tmp_path / "sources.txt"
    plain_file.write_text("# feeds\nhttp://127.0.0.1:9/three\n\nfile:///tmp/four.txt\n")

    call_command("load_sources", str(yaml_file), stdout=StringIO())
    call_command("load_sources", str(json_file), stdout=StringIO())
    call_command("load_sources", str(plain_file), stdout=StringIO())

    one = Source.objects.get(name="one")
    assert one.url == "http://127.0.0.1:9/one-new"
    assert one.enabled is False
    assert one.user_agent == ""
    assert Source.objects.get(name="127.0.0.1:9/two").url.endswith("token=x")
    assert Source.objects.count() == 4


def test_load_sources_reports_bad_entries_and_keeps_good(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- url: ftp://127.0.0.1/x\n- url: http://127.0.0.1:9/ok\n- 42\n")
    err = StringIO()
    with pytest.raises(CommandError, match="2 entries rejected; the others were stored"):
        call_command("load_sources", str(bad), stdout=StringIO(), stderr=err)
    assert "ftp://127.0.0.1/x" in err.getvalue()
    assert "Entry 3" in err.getvalue()
    assert list(Source.objects.values_list("url", flat=True)) == ["http://127.0.0.1:9/ok"]


def test_load_sources_rejects_unreadable_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("load_sources", str(tmp_path / "nope.yaml"))


def test_merge_where_every_input_fails_keeps_served_nodes(tmp_path):
    good = services.run_merge(inputs=services.inputs_from_locations([str(SAMPLES_DIR / "links.txt")]))
    missing = tmp_path / "missing.txt"

    failed = services.run_merge(inputs=services.inputs_from_locations([str(missing)]))

    assert failed.status == MergeRun.Status.FAILED
    assert "all 1 inputs failed" in failed.error
    assert SourceResult.objects.filter(run=failed, ok=False).count() == 1
    assert Node.objects.filter(last_run=good).count() == good.unique
    assert services.current_export_dir() == Path(good.export_dir)


def test_merge_command_fails_when_every_input_fails(tmp_path):
    with pytest.raises(CommandError, match="all 1 inputs failed"):
        call_command(
            "merge", "--from", str(tmp_path / "nope.txt"), "--no-probe", "--no-progress", stdout=StringIO()
        )


def test_merge_command_rejects_unwritable_out_before_fetching(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CommandError, match="Cannot create the --out folder"):
        call_command(
            "merge", "--from", str(SAMPLES_DIR / "links.txt"), "--out", str(blocker / "sub"), "--no-progress"
        )
    assert not MergeRun.objects.exists()


def test_merge_command_refuses_while_merge_active(tmp_path):
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    active = MergeRun.objects.create(status=MergeRun.Status.RUNNING, heartbeat_at=timezone.now())

    with pytest.raises(CommandError, match=f"Merge run {active.pk} is already running"):
        call_command("merge", "--no-probe", "--no-progress", stdout=StringIO())

    assert MergeRun.objects.count() == 1


def test_merge_command_ignores_active_probe_run(tmp_path):
    Source.objects.create(name="links", url=str(SAMPLES_DIR / "links.txt"))
    MergeRun.objects.create(
        kind=MergeRun.Kind.PROBE, status=MergeRun.Status.RUNNING, heartbeat_at=timezone.now()
    )

    call_command("merge", "--no-probe", "--no-progress", stdout=StringIO())

    assert MergeRun.objects.filter(kind=MergeRun.Kind.MERGE, status=MergeRun.Status.SUCCEEDED).count() == 1
