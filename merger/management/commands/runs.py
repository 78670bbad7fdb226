"""`manage.py runs`: list recent merge runs, or cancel one with --cancel ID."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from merger import orchestration
from merger.models import MergeRun


class Command(BaseCommand):
    help = _("List recent merge runs with status, duration and counts, or cancel one.")

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=20, help=_("How many runs to list, newest first."))
        parser.add_argument(
            "--cancel", type=int, metavar="ID", help=_("Cancel the pending or running merge run ID.")
        )

    def handle(self, *args, **options):
        if options["cancel"] is not None:
            self._cancel(options["cancel"])
            return
        if options["limit"] < 1:
            raise CommandError(_("Invalid --limit %(limit)d: give 1 or more.") % {"limit": options["limit"]})
        orchestration.recover_stale_runs()
        runs = list(MergeRun.objects.order_by("-created_at")[: options["limit"]])
        if not runs:
            self.stdout.write(_("No merge runs yet. Start one with 'manage.py merge'."))
            return
        header = f"{'ID':>6}  {'STATUS':<10} {'TRIGGER':<9} {'CREATED':<20} {'DURATION':>9}  "
        header += f"{'SOURCES':>9} {'LINKS':>8} {'UNIQUE':>7}  STAGE / ERROR"
        self.stdout.write(header)
        for run in runs:
            duration = f"{run.duration:.1f}s" if run.duration is not None else "-"
            sources = f"{run.sources_ok}/{run.sources_ok + run.sources_failed}"
            detail = run.error.splitlines()[0][:60] if run.error else (run.stage or "")
            if run.status == MergeRun.Status.RUNNING:
                detail = f"{run.stage} {run.progress:.0f}%"
                if run.cancel_requested:
                    detail += " " + _("(cancel requested)")
            self.stdout.write(
                f"{run.pk:>6}  {run.status:<10} {run.trigger[:9]:<9} {run.created_at:%Y-%m-%d %H:%M:%S}  "
                f"{duration:>9}  {sources:>9} {run.links_seen:>8} {run.unique:>7}  {detail}"
            )

    def _cancel(self, run_id: int) -> None:
        try:
            run = orchestration.cancel_run(run_id)
        except MergeRun.DoesNotExist:
            raise CommandError(
                _("Merge run %(id)d not found: list the runs with 'manage.py runs'.") % {"id": run_id}
            ) from None
        if run.status == MergeRun.Status.CANCELLED:
            self.stdout.write(self.style.SUCCESS(_("Merge run %(id)d cancelled.") % {"id": run_id}))
        elif run.status == MergeRun.Status.RUNNING:
            self.stdout.write(
                _("Cancel requested: merge run %(id)d stops at its next stage.") % {"id": run_id}
            )
        else:
            raise CommandError(
                _("Merge run %(id)d has already finished (%(status)s); nothing to cancel.")
                % {"id": run_id, "status": run.status}
            )
