"""Source URL and `enabled` validation shared by load_sources, the web form and the API."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from merger.forms import SourceForm
from merger.models import Source
from merger.sources import parse_enabled, read_source_entries, source_url_error

pytestmark = pytest.mark.django_db

BAD_URLS = [
    "javascript:alert(1)",
    "relative/path.txt",
    "./subs.txt",
    "ftp://127.0.0.1/x",
    "http://",
    "https:///path-without-host",
    "file://relative.txt",
    "http://127.0.0.1/a b",
    "",
]
GOOD_URLS = ["http://127.0.0.1:9/sub", "HTTPS://127.0.0.1/x?token=1", "file:///srv/a.txt", "/srv/subs.txt"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_source_url_error_rejects(url):
    assert source_url_error(url)


@pytest.mark.parametrize("url", GOOD_URLS)
def test_source_url_error_accepts(url):
    assert source_url_error(url) == ""


@pytest.mark.parametrize("url", ["javascript:alert(1)", "relative/path.txt", "http://"])
def test_source_form_rejects_what_load_sources_rejects(url, tmp_path):
    form = SourceForm(data={"name": "x", "url": url, "enabled": "on", "headers": "{}"})
    assert not form.is_valid()
    assert "url" in form.errors

    listing = tmp_path / "one.yaml"
    listing.write_text(f"- name: x\n  url: '{url}'\n")
    with pytest.raises(CommandError, match="1 entry rejected and no source was stored"):
        call_command("load_sources", str(listing), stdout=StringIO(), stderr=StringIO())
    assert not Source.objects.exists()


def test_source_form_accepts_absolute_path():
    form = SourceForm(data={"name": "local", "url": "/srv/subs.txt", "enabled": "on", "headers": "{}"})
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("no", False),
        ("NO", False),
        ("Off", False),
        ("0", False),
        ("false", False),
        ("yes", True),
        ("On", True),
        ("1", True),
        (1, True),
        (0, False),
        ([1], None),
        ("maybe", None),
        (2, None),
        (None, None),
    ],
)
def test_parse_enabled_values(value, expected):
    assert parse_enabled(value) is expected


def test_load_sources_quoted_enabled_words(tmp_path):
    listing = tmp_path / "sources.yaml"
    listing.write_text(
        "- {name: a, url: 'http://127.0.0.1:9/a', enabled: 'no'}\n"
        "- {name: b, url: 'http://127.0.0.1:9/b', enabled: 'YES'}\n"
        "- {name: c, url: 'http://127.0.0.1:9/c', enabled: off}\n"
    )
    call_command("load_sources", str(listing), stdout=StringIO(), stderr=StringIO())
    assert dict(Source.objects.values_list("name", "enabled")) == {"a": False, "b": True, "c": False}


def test_load_sources_rejects_unknown_enabled(tmp_path):
    listing = tmp_path / "sources.yaml"
    listing.write_text(
        "- {name: good, url: 'http://127.0.0.1:9/good'}\n"
        "- {name: list, url: 'http://127.0.0.1:9/list', enabled: [1]}\n"
        "- {name: word, url: 'http://127.0.0.1:9/word', enabled: maybe}\n"
    )
    errors = StringIO()
    with pytest.raises(CommandError, match="2 entries rejected; the others were stored"):
        call_command("load_sources", str(listing), stdout=StringIO(), stderr=errors)
    assert "Entry 2: 'enabled' of 'http://127.0.0.1:9/list' is [1]" in errors.getvalue()
    assert "Entry 3: 'enabled' of 'http://127.0.0.1:9/word' is 'maybe'" in errors.getvalue()
    assert list(Source.objects.values_list("name", flat=True)) == ["good"]


def test_plain_list_with_bad_line_read_per_line(tmp_path):
    listing = tmp_path / "sources.txt"
    listing.write_text(
        "# feeds\nhttp://127.0.0.1:9/one\nnot a url at all\njavascript:alert(1)\n\n/srv/two.txt\n"
    )
    out, errors = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 entries rejected; the others were stored"):
        call_command("load_sources", str(listing), stdout=out, stderr=errors)
    assert "Entry 2: invalid URL 'not a url at all'" in errors.getvalue()
    assert "Entry 3: invalid URL 'javascript:alert(1)'" in errors.getvalue()
    assert "2 created, 0 updated, 2 rejected" in out.getvalue()
    assert sorted(Source.objects.values_list("url", flat=True)) == ["/srv/two.txt", "http://127.0.0.1:9/one"]


def test_yaml_structure_still_read_as_yaml():
    entries = read_source_entries("sources:\n  - url: http://127.0.0.1:9/a\n    enabled: 'no'\n")
    assert entries == [{"url": "http://127.0.0.1:9/a", "enabled": "no"}]


def test_load_sources_all_rejected_says_nothing_stored(tmp_path):
    listing = tmp_path / "sources.txt"
    listing.write_text("relative/one.txt\nrelative/two.txt\n")
    with pytest.raises(CommandError, match="2 entries rejected and no source was stored"):
        call_command("load_sources", str(listing), stdout=StringIO(), stderr=StringIO())
    assert not Source.objects.exists()
