"""`manage.py profile create|list|rotate|revoke`: manage output profiles and print their URLs."""

from __future__ import annotations

from datetime import datetime, time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from merger import profiles
from merger.models import OutputProfile


class Command(BaseCommand):
    help = _("Create, list, rotate or revoke output profiles; each prints the subscription URL.")

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)

        create = actions.add_parser("create", help=_("Create a profile and print its URL."))
        create.add_argument("name")
        create.add_argument(
            "--format",
            choices=OutputProfile.Format.values,
            default=OutputProfile.Format.BASE64,
            help=_("Format served when neither ?target= nor the User-Agent decides."),
        )
        create.add_argument(
            "--alive-only", action="store_true", help=_("Serve only nodes whose last probe passed.")
        )
        create.add_argument(
            "--protocol", action="append", default=[], help=_("Serve only this protocol; repeat for several.")
        )
        create.add_argument(
            "--port", action="append", default=[], type=int, help=_("Serve only this port; repeatable.")
        )
        create.add_argument(
            "--region",
            action="append",
            default=[],
            help=_("Serve only this country (ISO code such as DE); repeatable."),
        )
        create.add_argument(
            "--include", default="", help=_("Regex that a node name must match (case-insensitive).")
        )
        create.add_argument(
            "--exclude", default="", help=_("Regex that a node name must not match (case-insensitive).")
        )
        create.add_argument("--max-latency", type=int, help=_("Maximum latency in milliseconds."))
        create.add_argument("--top", type=int, help=_("Serve at most N nodes, after sorting."))
        create.add_argument("--per-protocol", type=int, help=_("Serve at most N nodes of each protocol."))
        create.add_argument("--sort", choices=OutputProfile.Sort.values, default=OutputProfile.Sort.SCORE)
        create.add_argument(
            "--rename",
            default="",
            help=_("Name template, e.g. '{flag} {country} {protocol} {index} {latency}'."),
        )
        create.add_argument(
            "--userinfo",
            choices=OutputProfile.UserinfoPolicy.values,
            default=OutputProfile.UserinfoPolicy.FIRST,
            help=_("subscription-userinfo header: from the first source, summed, or none."),
        )
        create.add_argument(
            "--interval", type=int, default=12, help=_("Update interval announced to clients, in hours.")
        )
        create.add_argument("--expires", help=_("Expiry as an ISO date or date-time, e.g. 2030-01-31."))

        actions.add_parser("list", help=_("List the profiles with their URLs."))
        rotate = actions.add_parser("rotate", help=_("Give a profile a new token and print the new URL."))
        rotate.add_argument("name")
        revoke = actions.add_parser("revoke", help=_("Revoke a profile; its URL answers 404 from now on."))
        revoke.add_argument("name")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        if action == "create":
            self._create(options)
        elif action == "list":
            self._list()
        elif action == "rotate":
            profile = profiles.rotate_token(self._get(options["name"]))
            self.stdout.write(profiles.subscription_url(profile))
        elif action == "revoke":
            profile = profiles.revoke(self._get(options["name"]))
            self.stdout.write(
                _("Revoked %(name)s: %(url)s")
                % {"name": profile.name, "url": profiles.subscription_url(profile)}
            )

    def _get(self, name: str) -> OutputProfile:
        try:
            return OutputProfile.objects.get(name=name)
        except OutputProfile.DoesNotExist:
            raise CommandError(
                _("No profile named %(name)r: see 'manage.py profile list'.") % {"name": name}
            ) from None

    def _create(self, options: dict) -> None:
        name = options["name"]
        if OutputProfile.objects.filter(name=name).exists():
            raise CommandError(
                _("A profile named %(name)r already exists: pick another name.") % {"name": name}
            )
        profile = OutputProfile(
            name=name,
            default_format=options["format"],
            alive_only=options["alive_only"],
            protocols=options["protocol"],
            ports=options["port"],
            regions=options["region"],
            include_regex=options["include"],
            exclude_regex=options["exclude"],
            max_latency_ms=options["max_latency"],
            top_n=options["top"],
            per_protocol_cap=options["per_protocol"],
            sort=options["sort"],
            rename_template=options["rename"],
            userinfo_policy=options["userinfo"],
            update_interval_hours=options["interval"],
            expires_at=_parse_expiry(options["expires"]) if options["expires"] else None,
        )
        try:
            profiles.validate_profile(profile)
        except ValidationError as error:
            messages = [f"{field}: {'; '.join(errors)}" for field, errors in error.message_dict.items()]
            raise CommandError("\n".join(messages)) from None
        # Stored in canonical form (lower-case protocols, ISO codes), as the admin would show them.
        selection = profiles.selection_for(profile)
        profile.protocols = list(selection.protocols)
        profile.regions = list(selection.regions)
        profile.save()
        self.stdout.write(profiles.subscription_url(profile))

    def _list(self) -> None:
        now = timezone.now()
        for profile in OutputProfile.objects.order_by("name"):
            if profile.revoked:
                state = _("revoked")
            elif profile.expires_at is not None and profile.expires_at <= now:
                state = _("expired")
            else:
                state = _("active")
            self.stdout.write(
                f"{profile.name}\t{state}\t{profile.default_format}\t{profiles.subscription_url(profile)}"
            )


def _parse_expiry(text: str) -> datetime:
    parsed = parse_datetime(text)
    if parsed is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(
                _("Invalid --expires %(value)r: use an ISO date such as 2030-01-31.") % {"value": text}
            )
        parsed = datetime.combine(day, time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed
