"""`manage.py healthcheck`: run the health checks and print a table or JSON.

Exit status: 0 healthy, 1 degraded (a warning), 2 critical. With --watch the status of the last
round is returned.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from monitoring.checks import exit_code, overall_status, run_checks
from monitoring.recommendations import recommendations
from monitoring.snapshots import take_snapshot

STATUS_STYLE = {"ok": "SUCCESS", "warning": "WARNING", "critical": "ERROR", "skipped": "NOTICE"}


class Command(BaseCommand):
    help = _("Run the health checks and print their status; exit 0 healthy, 1 degraded, 2 critical.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help=_("Print JSON instead of a table."))
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=10.0,
            metavar="SECONDS",
            help=_("Check again every SECONDS (default 10) until interrupted or --count rounds."),
        )
        parser.add_argument("--count", type=int, help=_("With --watch, stop after this many rounds."))
        parser.add_argument(
            "--recommend", action="store_true", help=_("Also print recommendations with fixes.")
        )
        parser.add_argument(
            "--check",
            action="append",
            dest="checks",
            metavar="NAME",
            help=_("Run only this check (repeatable)."),
        )
        parser.add_argument(
            "--snapshot", action="store_true", help=_("Store the results as a snapshot and update alerts.")
        )

    def handle(self, *args, **options) -> None:
        if options["watch"] is not None and options["watch"] < 0:
            raise CommandError(
                _("--watch must be 0 seconds or more, got %(value)s.") % {"value": options["watch"]}
            )
        if options["count"] is not None and options["count"] < 1:
            raise CommandError(_("--count must be at least 1, got %(value)s.") % {"value": options["count"]})
        rounds = 0
        status = "ok"
        try:
            while True:
                status = self.check_once(options)
                rounds += 1
                if options["watch"] is None or (options["count"] and rounds >= options["count"]):
                    break
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            pass
        code = exit_code(status)
        if code:
            raise SystemExit(code)

    def check_once(self, options: dict) -> str:
        now = timezone.now()
        try:
            results = run_checks(options["checks"], now=now)
        except KeyError as error:
            raise CommandError(error.args[0]) from error
        if options["snapshot"]:
            take_snapshot(now=now, results=results)
        status = overall_status(results)
        found = recommendations(results, now=now) if options["recommend"] else []
        if options["json"]:
            document = {
                "time": now.isoformat(),
                "status": status,
                "checks": [result.as_dict() for result in results],
            }
            if options["recommend"]:
                document["recommendations"] = [item.as_dict() for item in found]
            self.stdout.write(json.dumps(document))
            return status

        self.stdout.write(f"{now:%Y-%m-%d %H:%M:%S} UTC  " + _("overall: %(status)s") % {"status": status})
        width = max((len(result.name) for result in results), default=5)
        for result in results:
            value = "-" if result.value is None else f"{result.value:g} {result.unit}".strip()
            style = getattr(self.style, STATUS_STYLE.get(result.status, "NOTICE"))
            line = f"{result.name:<{width}}  {style(f'{result.status:<8}')}  {value:>14}  {result.message}"
            self.stdout.write(line)
        if options["recommend"]:
            self.stdout.write("")
            if not found:
                self.stdout.write(_("No recommendations."))
            for item in found:
                style = getattr(self.style, STATUS_STYLE.get(item.severity, "NOTICE"))
                self.stdout.write(f"{style(f'[{item.severity}]')} {item.title}\n    {_('Fix:')} {item.fix}")
        return status
