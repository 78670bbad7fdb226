"""Forms of the web pages: sources, merge settings and output profiles, each with clear errors."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .core.node import PROTOCOLS
from .models import MergeSettings, OutputProfile, Source
from .sources import source_url_error


class SourceForm(forms.ModelForm):
    headers = forms.JSONField(
        label=_("extra headers"),
        required=False,
        initial=dict,
        help_text=_('A JSON object, for example {"Accept": "text/plain"}.'),
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = Source
        fields = ["name", "url", "enabled", "user_agent", "headers", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 2})}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        validate_source_url(url)
        return url

    def clean_headers(self) -> dict[str, str]:
        headers = self.cleaned_data.get("headers") or {}
        validate_headers(headers)
        return headers


def validate_source_url(url: str) -> None:
    """Raise ValidationError for a URL that load_sources would reject too (the API uses this as well)."""
    error = source_url_error(url.strip())
    if error:
        raise forms.ValidationError(error[0].upper() + error[1:] + ".")


def validate_headers(headers: object) -> None:
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise forms.ValidationError(_('Headers must be a JSON object of strings, like {"Name": "value"}.'))


class MergeSettingsForm(forms.ModelForm):
    class Meta:
        model = MergeSettings
        fields = ["fetch_concurrency", "fetch_timeout", "fetch_retries", "fetch_max_bytes", "user_agent"]


class CommaListField(forms.CharField):
    """A comma-separated text input stored as a list; items are validated by the form."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        return [item.strip() for item in text.split(",") if item.strip()]


class OutputProfileForm(forms.ModelForm):
    protocols = CommaListField(
        label=_("protocols"), required=False, help_text=_("Comma-separated; empty means all.")
    )
    ports = CommaListField(label=_("ports"), required=False, help_text=_("Comma-separated; empty means all."))
    regions = CommaListField(
        label=_("regions"), required=False, help_text=_("Comma-separated ISO country codes; empty means all.")
    )

    class Meta:
        model = OutputProfile
        fields = [
            "name", "default_format", "include_regex", "exclude_regex", "protocols", "ports", "regions",
            "alive_only", "max_latency_ms", "top_n", "per_protocol_cap", "sort", "rename_template",
            "userinfo_policy", "update_interval_hours", "expires_at", "revoked",
        ]  # fmt: skip
        widgets = {"expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"})}

    def _clean_regex(self, field: str) -> str:
        pattern = self.cleaned_data.get(field, "")
        if pattern:
            try:
                re.compile(pattern)
            except re.error as error:
                raise forms.ValidationError(
                    _("Invalid regular expression %(pattern)s: %(error)s."),
                    params={"pattern": pattern, "error": error},
                ) from None
        return pattern

    def clean_include_regex(self) -> str:
        return self._clean_regex("include_regex")

    def clean_exclude_regex(self) -> str:
        return self._clean_regex("exclude_regex")

    def clean_protocols(self) -> list[str]:
        protocols = [item.lower() for item in self.cleaned_data["protocols"]]
        unknown = [item for item in protocols if item not in PROTOCOLS]
        if unknown:
            raise forms.ValidationError(
                _("Unknown protocol %(names)s: use %(known)s."),
                params={"names": ", ".join(unknown), "known": ", ".join(sorted(PROTOCOLS))},
            )
        return protocols

    def clean_ports(self) -> list[int]:
        ports = []
        for item in self.cleaned_data["ports"]:
            if not item.isdigit() or not 1 <= int(item) <= 65535:
                raise forms.ValidationError(
                    _("Invalid port %(value)s: ports are whole numbers from 1 to 65535."),
                    params={"value": item},
                )
            ports.append(int(item))
        return ports

    def clean_regions(self) -> list[str]:
        regions = [item.upper() for item in self.cleaned_data["regions"]]
        for region in regions:
            if len(region) != 2 or not region.isalpha():
                raise forms.ValidationError(
                    _("Invalid region %(value)s: use two-letter ISO country codes such as DE or JP."),
                    params={"value": region},
                )
        return regions

    def clean_rename_template(self) -> str:
        template = self.cleaned_data.get("rename_template", "")
        if template:
            known = {
                "flag": "",
                "country": "",
                "protocol": "",
                "index": 0,
                "latency": "",
                "name": "",
                "host": "",
            }
            try:
                template.format(**known)
            except (KeyError, IndexError, ValueError) as error:
                raise forms.ValidationError(
                    _("Invalid rename template %(template)s: %(error)s. Placeholders: %(names)s."),
                    params={
                        "template": template,
                        "error": error,
                        "names": ", ".join(f"{{{key}}}" for key in known),
                    },
                ) from None
        return template
