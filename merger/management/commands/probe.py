"""`manage.py probe`: re-test the stored nodes by TCP connect or TLS handshake, and optionally a URL test."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from merger import probing


class Command(BaseCommand):
    help = _(
        "Probe the stored nodes again (TCP connect, or a TLS handshake for TLS-based nodes) and update "
        "their alive, latency and success-ratio fields."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--core-test",
            action="store_true",
            help=_("Also fetch VPNMERGER_PROBE_TEST_URL through each node with a local v2ray or xray core."),
        )
        parser.add_argument(
            "--protocol",
            action="append",
            default=[],
            metavar="NAME",
            help=_("Only nodes of this protocol (vmess, vless, trojan, ss...); repeat for several."),
        )
        parser.add_argument("--limit", type=int, help=_("Probe at most this many nodes (lowest ids first)."))
        state = parser.add_mutually_exclusive_group()
        state.add_argument(
            "--only-dead", action="store_true", help=_("Only nodes that are dead or were never checked.")
        )
        state.add_argument(
            "--only-alive", action="store_true", help=_("Only nodes that passed their last check.")
        )
        parser.add_argument("--no-progress", action="store_true", help=_("Do not draw a progress bar."))

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError(_("--limit must be at least 1, got %(value)s.") % {"value": options["limit"]})
        only = ""
        if options["only_dead"]:
            only = "dead"
        elif options["only_alive"]:
            only = "alive"
        probe_options = probing.ProbeOptions.from_settings(core_test=options["core_test"])

        show_bar = not options["no_progress"] and options["verbosity"] > 0
        bar = tqdm(unit="check", desc="probe", disable=not show_bar)

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            # update() redraws at most ten times a second, unlike refresh() on every check.
            bar.update(done - bar.n)

        try:
            checked, probed, alive = probing.probe_stored_nodes(
                protocols=options["protocol"],
                only=only,
                limit=options["limit"],
                options=probe_options,
                progress=progress,
            )
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "Checked %(checked)d nodes: %(probed)d testable, %(alive)d alive, "
                    "%(untested)d not testable"
                )
                % {"checked": checked, "probed": probed, "alive": alive, "untested": checked - probed}
            )
        )
