"""`manage.py merge`: merge every enabled source, or the inputs given with --from."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from merger import orchestration, probing, services
from merger.models import MergeRun, SourceResult


class Command(BaseCommand):
    help = _("Fetch, parse, de-duplicate and export every enabled source (or the --from inputs).")

    def add_arguments(self, parser):
        parser.add_argument(
            "--from",
            dest="locations",
            action="append",
            metavar="PATH_OR_URL",
            help=_("Merge this file or URL instead of the stored sources; repeat for several."),
        )
        parser.add_argument(
            "--out", metavar="DIR", help=_("Also write the exports into this folder (created if missing).")
        )
        parser.add_argument(
            "--no-probe",
            action="store_true",
            help=_("Skip probing the servers (TCP connect or TLS handshake)."),
        )
        parser.add_argument(
            "--core-test",
            action="store_true",
            help=_("Also fetch VPNMERGER_PROBE_TEST_URL through each server with a v2ray or xray core."),
        )
        parser.add_argument("--no-progress", action="store_true", help=_("Do not draw a progress bar."))
        parser.add_argument(
            "--background",
            action="store_true",
            help=_("Queue a merge of the stored sources on the Celery workers, print its run id and return."),
        )

    def handle(self, *args, **options):
        if options["background"]:
            self._queue(options)
            return
        if options["locations"]:
            inputs = services.inputs_from_locations(options["locations"])
        else:
            inputs = services.inputs_for_enabled_sources()
            if not inputs:
                raise CommandError(
                    _(
                        "No enabled sources. Add some with 'manage.py load_sources FILE' or in the admin, "
                        "or merge files and URLs directly with --from."
                    )
                )
        out_dir = Path(options["out"]).resolve() if options["out"] else None
        if out_dir is not None:
            # Checked before fetching, so a typo does not cost a whole merge.
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CommandError(
                    _("Cannot create the --out folder %(path)s: %(error)s")
                    % {"path": out_dir, "error": error.strerror}
                ) from None

        show_bar = not options["no_progress"] and options["verbosity"] > 0
        # disable=None lets tqdm turn itself off when standard error is not a terminal, so logs
        # and pipes do not get one line per refresh.
        bar = tqdm(
            total=100,
            unit="%",
            desc="fetch",
            disable=None if show_bar else True,
            bar_format="{l_bar}{bar}| {n:.0f}%",
        )

        def listener(run, stage, done, total, percent):
            bar.set_description_str(stage)
            bar.n = percent
            bar.refresh()

        reserved = self._reserve_run(options)
        try:
            probe_options = None
            if not options["no_probe"]:
                probe_options = probing.ProbeOptions.from_settings(core_test=options["core_test"])
            run = services.run_merge(
                reserved,
                inputs=inputs,
                out_dir=out_dir,
                listener=listener,
                trigger="command",
                probe_options=probe_options,
            )
        except Exception as error:
            bar.close()
            raise CommandError(_("Merge failed: %(error)s") % {"error": error}) from error
        bar.close()
        self._print_summary(run)
        if run.status != MergeRun.Status.SUCCEEDED:
            raise CommandError(
                _("Merge run %(id)s %(status)s: %(error)s")
                % {"id": run.pk, "status": run.status, "error": run.error}
            )

    def _reserve_run(self, options) -> MergeRun:
        if options["locations"]:
            return services.create_run("command", kind=MergeRun.Kind.ADHOC)
        request = orchestration.reserve_merge("command")
        if not request.created:
            raise CommandError(
                _(
                    "Merge run %(id)s is already %(status)s; wait for it or cancel it with "
                    "'manage.py runs --cancel %(id)s'."
                )
                % {"id": request.run.pk, "status": request.run.status}
            )
        return request.run

    def _queue(self, options) -> None:
        if options["locations"] or options["out"]:
            raise CommandError(
                _(
                    "--background merges the stored sources only: "
                    "drop --from and --out, or run without --background."
                )
            )
        try:
            request = orchestration.request_merge(trigger="command", probe=not options["no_probe"])
        except orchestration.NoEnabledSources as error:
            raise CommandError(str(error)) from None
        if request.created:
            self.stdout.write(str(request.run.pk))
        else:
            raise CommandError(
                _("Merge run %(id)s is already %(status)s; cancel it with 'manage.py runs --cancel %(id)s'.")
                % {"id": request.run.pk, "status": request.run.status}
            )

    def _print_summary(self, run: MergeRun) -> None:
        write = self.stdout.write
        write(self.style.SUCCESS(_("Merge run %(id)s %(status)s") % {"id": run.pk, "status": run.status}))
        write(
            _("Sources: %(ok)d ok, %(failed)d failed") % {"ok": run.sources_ok, "failed": run.sources_failed}
        )
        for result in SourceResult.objects.filter(run=run).order_by("label"):
            if result.ok:
                line = _("  ok      %(label)s: %(format)s, %(nodes)d nodes, %(invalid)d invalid") % {
                    "label": result.label,
                    "format": result.format,
                    "nodes": result.nodes,
                    "invalid": result.invalid,
                }
                write(line + (f" ({result.error})" if result.error else ""))
            else:
                write(
                    self.style.WARNING(
                        _("  failed  %(label)s: %(error)s") % {"label": result.label, "error": result.error}
                    )
                )
        write(
            _("Links seen: %(seen)d, invalid: %(invalid)d, duplicates: %(dup)d, unique: %(unique)d")
            % {"seen": run.links_seen, "invalid": run.invalid, "dup": run.duplicates, "unique": run.unique}
        )
        if run.per_protocol:
            write(
                _("Per protocol: ") + ", ".join(f"{name} {count}" for name, count in run.per_protocol.items())
            )
        if run.invalid_reasons:
            top = list(run.invalid_reasons.items())[:5]
            write(_("Top invalid reasons: ") + "; ".join(f"{reason} ({count})" for reason, count in top))
        for target, reasons in (run.export_skipped or {}).items():
            skipped = sum(reasons.values())
            if skipped:
                write(_("Left out of %(target)s: %(count)d nodes") % {"target": target, "count": skipped})
        if run.probed:
            write(_("Probed: %(probed)d nodes, %(alive)d alive") % {"probed": run.probed, "alive": run.alive})
        write(_("Exports written to %(dir)s") % {"dir": run.export_dir})
