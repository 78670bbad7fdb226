"""`manage.py parselinks [FILE]`: parse one subscription body and print JSON lines."""

from __future__ import annotations

import sys

import orjson
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from merger.core.decode import parse_body
from merger.core.errors import DecodeError
from merger.core.export.links import serialize_links


class Command(BaseCommand):
    help = _(
        "Parse a subscription body in any supported format from FILE or standard input and print one "
        "JSON object per line: each node's fields and canonical link, or {error, line} for a rejected entry."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help=_("File to read; standard input when left out or '-'."))

    def handle(self, *args, **options):
        path = options["file"]
        if path and path != "-":
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                raise CommandError(
                    _("Cannot read %(path)s: %(error)s") % {"path": path, "error": error.strerror}
                ) from None
        else:
            data = sys.stdin.buffer.read()
        try:
            parsed = parse_body(data)
        except DecodeError as error:
            raise CommandError(_("Not a subscription: %(error)s") % {"error": error}) from None

        links, _skipped = serialize_links(parsed.nodes)
        out = sys.stdout.buffer
        for node, link in zip(parsed.nodes, links, strict=True):
            row = node.as_dict()
            row["fingerprint"] = node.fingerprint
            row["link"] = link
            out.write(orjson.dumps(row) + b"\n")
        for rejected in parsed.rejected:
            out.write(orjson.dumps({"error": rejected.reason, "line": rejected.line}) + b"\n")
        out.flush()
        self.stderr.write(
            _("%(format)s: %(nodes)d nodes, %(invalid)d rejected")
            % {"format": parsed.format, "nodes": len(parsed.nodes), "invalid": len(parsed.rejected)}
        )
