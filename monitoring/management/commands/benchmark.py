"""`manage.py benchmark`: the offline merge benchmark on the corpus grown to N links."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from merger.bench import run_merge_benchmark
from merger.core.bulk import FORK_ENV


class Command(BaseCommand):
    help = _(
        "Merge the subscription corpus grown by mutation to --links links, offline, and print the time, "
        "links per second and peak memory of every stage."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--links", type=int, default=1_000_000, help=_("Number of links to merge (default 1000000).")
        )
        parser.add_argument(
            "--corpus",
            default=str(settings.BASE_DIR.parent / "shared" / "corpus"),
            help=_("Folder of corpus files to grow (default ../shared/corpus beside the checkout)."),
        )
        parser.add_argument("--out", help=_("Keep the exports in this folder instead of a temporary one."))
        parser.add_argument(
            "--fork",
            action="store_true",
            help=_("Let parsing and exporting use a forked worker on a second core (sets VPNMERGER_FORK=1)."),
        )
        parser.add_argument(
            "--suite",
            choices=("merge", "probe"),
            default="merge",
            help=_("merge: the offline merge (default); probe: probe a loopback listener farm."),
        )
        parser.add_argument(
            "--endpoints", type=int, default=10_000, help=_("probe suite: farm endpoints (default 10000).")
        )
        parser.add_argument(
            "--probe-kind",
            choices=("tcp", "tls"),
            default="tcp",
            help=_("probe suite: TCP connect or TLS handshake."),
        )
        parser.add_argument(
            "--concurrency", type=int, default=1000, help=_("probe suite: probes in flight (default 1000).")
        )
        parser.add_argument(
            "--probe-timeout", type=float, default=1.0, help=_("probe suite: seconds per probe (default 1).")
        )

    def handle(self, *args, **options):
        if options["suite"] == "probe":
            self._probe_suite(options)
            return
        corpus = Path(options["corpus"])
        if options["fork"]:
            os.environ[FORK_ENV] = "1"
        if not corpus.is_dir():
            raise CommandError(_("Corpus folder %(path)s not found; pass --corpus PATH.") % {"path": corpus})
        if options["links"] < 1:
            raise CommandError(_("--links must be at least 1, got %(value)s.") % {"value": options["links"]})
        self.stdout.write(
            _("Machine: %(cpu)s, %(cores)d cores, Python %(python)s")
            % {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
        )
        report = run_merge_benchmark(
            corpus, options["links"], Path(options["out"]) if options["out"] else None, echo=self.stdout.write
        )
        self.stdout.write(
            _("%(links)d links: %(unique)d unique, %(dup)d duplicates, %(invalid)d invalid")
            % {
                "links": report.links,
                "unique": report.unique,
                "dup": report.duplicates,
                "invalid": report.invalid,
            }
        )
        cpu_seconds = sum(stage.cpu_seconds for stage in report.stages if stage.name != "generate")
        self.stdout.write(
            _("Total (parse to last export): %(seconds).2f s, CPU %(cpu).2f s; peak RSS %(rss).0f MB")
            % {"seconds": report.total_seconds, "cpu": cpu_seconds, "rss": report.peak_rss_mb}
        )

    def _probe_suite(self, options) -> None:
        # The farm lives with the test helpers because the tests start the same servers.
        from monitoring.probe_farm import run_probe_benchmark

        if options["endpoints"] < 20 or options["concurrency"] < 1:
            raise CommandError(_("--endpoints must be at least 20 and --concurrency at least 1."))
        self.stdout.write(
            _("Machine: %(cpu)s, %(cores)d cores, Python %(python)s")
            % {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
        )
        report = run_probe_benchmark(
            options["endpoints"],
            kind=options["probe_kind"],
            concurrency=options["concurrency"],
            timeout=options["probe_timeout"],
            echo=self.stdout.write,
        )
        self.stdout.write(
            _(
                "%(kind)s probe of %(n)d endpoints at concurrency %(c)d: %(wall).2f s wall, %(cpu).2f s CPU, "
                "ideal %(ideal).2f s, ratio %(ratio).2f"
            )
            % {
                "kind": report.kind,
                "n": report.endpoints,
                "c": report.concurrency,
                "wall": report.wall_seconds,
                "cpu": report.cpu_seconds,
                "ideal": report.ideal_seconds,
                "ratio": report.ratio,
            }
        )
        self.stdout.write(
            _(
                "Reported alive: %(alive)d of %(n_alive)d alive, %(closed)d of %(n_closed)d closed, "
                "%(silent)d of %(n_silent)d silent endpoints"
            )
            % {
                "alive": report.reported_alive["alive"],
                "n_alive": report.alive,
                "closed": report.reported_alive["closed"],
                "n_closed": report.closed,
                "silent": report.reported_alive["silent"],
                "n_silent": report.silent,
            }
        )
        if report.reported_alive["closed"] or report.reported_alive["silent"]:
            raise CommandError(_("A closed or silent endpoint was reported alive."))


def _cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (Linux), else the platform's machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
