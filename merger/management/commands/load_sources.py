"""`manage.py load_sources FILE`: add or update sources from YAML, JSON or a URL list."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from merger.sources import SourceFileError, load_sources


class Command(BaseCommand):
    help = _(
        "Add or update sources from FILE: YAML or JSON (a list, or a mapping with a 'sources' list, of URLs "
        "or of {name, url, enabled, user_agent, headers}) or plain text with one URL per line."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("Path of the sources file."))

    def handle(self, *args, **options):
        try:
            result = load_sources(Path(options["file"]))
        except SourceFileError as error:
            raise CommandError(str(error)) from None
        for name in result.created:
            self.stdout.write(_("created %(name)s") % {"name": name})
        for name in result.updated:
            self.stdout.write(_("updated %(name)s") % {"name": name})
        for error in result.errors:
            self.stderr.write(self.style.WARNING(error))
        self.stdout.write(
            _("%(created)d created, %(updated)d updated, %(errors)d rejected")
            % {"created": len(result.created), "updated": len(result.updated), "errors": len(result.errors)}
        )
        # Any rejected entry makes the exit status non-zero, so scripts notice a partly loaded file.
        count = len(result.errors)
        if result.errors and not (result.created or result.updated):
            raise CommandError(
                ngettext(
                    "%(count)d entry rejected and no source was stored: fix the entry listed above.",
                    "%(count)d entries rejected and no source was stored: fix the entries listed above.",
                    count,
                )
                % {"count": count}
            )
        if result.errors:
            raise CommandError(
                ngettext(
                    "%(count)d entry rejected; the others were stored. Fix the entry listed above.",
                    "%(count)d entries rejected; the others were stored. Fix the entries listed above.",
                    count,
                )
                % {"count": count}
            )
