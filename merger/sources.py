"""Import source definitions from YAML, JSON or a plain list of URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from django.db import transaction
from django.utils.translation import gettext as _

from .models import Source

ALLOWED_SCHEMES = ("http://", "https://", "file://")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def source_url_error(url: str) -> str:
    """Return why url cannot be a source, or "" when it can.

    Shared by load_sources, the web form and the API so all three accept the same URLs: http://,
    https:// or file:// with something after the scheme, or an absolute local path.
    """
    if not url:
        return _("missing URL: use http://, https://, file:// or an absolute path")
    if any(character.isspace() or ord(character) < 32 for character in url):
        return _("invalid URL %(url)r: it contains spaces or control characters") % {"url": url}
    lowered = url.lower()
    if lowered.startswith(ALLOWED_SCHEMES):
        rest = url.split("://", 1)[1]
        if lowered.startswith("file://"):
            if not rest.startswith("/"):
                return _(
                    "invalid URL %(url)r: a file:// URL needs an absolute path, like file:///srv/a.txt"
                ) % {"url": url}
        elif not rest or rest[0] in "/?#":
            return _("invalid URL %(url)r: the host is missing, as in http://127.0.0.1:8080/sub") % {
                "url": url
            }
        return ""
    if url.startswith("/"):
        return ""
    if "://" in url:
        return _(
            "unsupported scheme %(scheme)s:// in %(url)r: use http://, https://, file:// or an absolute path"
        ) % {
            "scheme": url.split("://", 1)[0],
            "url": url,
        }
    return _("invalid URL %(url)r: use http://, https://, file:// or an absolute path") % {"url": url}


def parse_enabled(value: Any) -> bool | None:
    """Return the boolean an `enabled` value means, or None when it is neither a bool nor a known word."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


class SourceFileError(ValueError):
    """A sources file that cannot be read as a whole; nothing from it is stored."""


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    # One message per rejected entry, naming the entry and the fix.
    errors: list[str] = field(default_factory=list)


def read_source_entries(text: str) -> list[dict[str, Any]]:
    """Turn a sources file into entry dicts with at least a `url` key.

    Accepted shapes: a YAML or JSON list of entries or of URL strings, a mapping with a `sources`
    list, or plain text with one URL per line (blank lines and `#` comments skipped).
    """
    stripped = text.strip()
    if not stripped:
        raise SourceFileError(_("The sources file is empty."))
    document: Any
    if stripped[0] in "[{":
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError as error:
            raise SourceFileError(_("Invalid JSON: %(error)s") % {"error": error}) from None
    elif _looks_like_url_list(stripped):
        document = [
            line.strip()
            for line in stripped.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    else:
        try:
            document = yaml.load(stripped, Loader=yaml.CSafeLoader)
        except yaml.YAMLError as error:
            raise SourceFileError(_("Invalid YAML: %(error)s") % {"error": error}) from None
    if isinstance(document, dict):
        document = document.get("sources")
    if not isinstance(document, list):
        raise SourceFileError(
            _("Expected a list of sources, a mapping with a 'sources' list, or one URL per line.")
        )
    entries = []
    for item in document:
        entries.append({"url": item} if isinstance(item, str) else item)
    return entries


def _looks_like_url_list(text: str) -> bool:
    """Tell whether text is one entry per line rather than YAML.

    A line counts as YAML structure when it is a list item, a `key:` or `key: value` line or a
    document marker. Text without any such line is read line by line, so one bad line is
    rejected as its own entry instead of failing the whole file as invalid YAML.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and not any(_is_yaml_structure(line) for line in lines)


def _is_yaml_structure(line: str) -> bool:
    return line.startswith(("-", "...")) or line.endswith(":") or ": " in line or ":\t" in line


def load_sources(path: Path) -> LoadResult:
    """Add or update sources from a file; entries are matched by name, else by URL.

    A bad entry is reported and skipped; the others are stored in one transaction.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise SourceFileError(
            _("Cannot read %(path)s: %(error)s") % {"path": path, "error": error.strerror}
        ) from None
    except UnicodeDecodeError:
        raise SourceFileError(_("%(path)s is not UTF-8 text.") % {"path": path}) from None

    result = LoadResult()
    with transaction.atomic():
        for number, entry in enumerate(read_source_entries(text), 1):
            error = _store_entry(entry, result)
            if error:
                result.errors.append(_("Entry %(number)d: %(error)s") % {"number": number, "error": error})
    return result


def _store_entry(entry: Any, result: LoadResult) -> str:
    if not isinstance(entry, dict):
        return _("expected a URL or a mapping with a 'url' key, got %(value)r") % {"value": entry}
    url = str(entry.get("url") or "").strip()
    if not url:
        return _("missing 'url'")
    url_error = source_url_error(url)
    if url_error:
        return url_error
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        return _("'headers' of %(url)r must be a mapping of header names to values") % {"url": url}
    enabled = parse_enabled(entry.get("enabled", True))
    if enabled is None:
        return _("'enabled' of %(url)r is %(value)r: use true or false (also yes/no, on/off, 1/0)") % {
            "url": url,
            "value": entry.get("enabled"),
        }
    name = str(entry.get("name") or "").strip() or _name_from_url(url)
    values = {
        "url": url,
        "enabled": enabled,
        "user_agent": str(entry.get("user_agent") or ""),
        "headers": {str(key): str(value) for key, value in headers.items()},
        "notes": str(entry.get("notes") or ""),
    }
    source = Source.objects.filter(name=name).first()
    if source is None and not entry.get("name"):
        source = Source.objects.filter(url=url).first()
    if source is None:
        Source.objects.create(name=name, **values)
        result.created.append(name)
    else:
        for key, value in values.items():
            setattr(source, key, value)
        source.save()
        result.updated.append(source.name)
    return ""


def _name_from_url(url: str) -> str:
    """Derive a readable unique-enough name: host and path without the query (tokens live there)."""
    without_query = url.split("?", 1)[0].split("#", 1)[0]
    name = without_query.split("://", 1)[-1].rstrip("/")
    return name[:200] or url[:200]
