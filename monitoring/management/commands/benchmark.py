"""`manage.py benchmark`: the offline merge benchmark on the corpus grown to N links."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from merger.bench import run_merge_benchmark


class Command(BaseCommand):
    help = _(
        "Merge the subscription corpus grown by mutation to --links links, offline, and print the time, "
        "links per second and peak memory of every stage."
    )

    def add_arguments(self, parser):
        parser.add_argument("--links", type=int, default=1_000_000, help=_("Number of links to merge (default 1000000)."))
        parser.add_argument(
            "--corpus",
            default=str(settings.BASE_DIR.parent / "shared" / "corpus"),
            help=_("Folder of corpus files to grow (default ../shared/corpus beside the checkout)."),
        )
        parser.add_argument("--out", help=_("Keep the exports in this folder instead of a temporary one."))

    def handle(self, *args, **options):
        corpus = Path(options["corpus"])
        if not corpus.is_dir():
            raise CommandError(_("Corpus folder %(path)s not found; pass --corpus PATH.") % {"path": corpus})
        if options["links"] < 1:
            raise CommandError(_("--links must be at least 1, got %(value)s.") % {"value": options["links"]})
        self.stdout.write(
            _("Machine: %(cpu)s, %(cores)d cores, Python %(python)s")
            % {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}
        )
        report = run_merge_benchmark(
            corpus, options["links"], Path(options["out"]) if options["out"] else None, echo=self.stdout.write
        )
        self.stdout.write(
            _("%(links)d links: %(unique)d unique, %(dup)d duplicates, %(invalid)d invalid")
            % {"links": report.links, "unique": report.unique, "dup": report.duplicates, "invalid": report.invalid}
        )
        self.stdout.write(
            _("Total (parse to last export): %(seconds).2f s; peak RSS %(rss).0f MB")
            % {"seconds": report.total_seconds, "rss": report.peak_rss_mb}
        )
