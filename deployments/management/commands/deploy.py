"""`manage.py deploy --version V [--dry-run]`: pre-checks, backup, apply, verify, and rollback on failure."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from deployments import services
from deployments.models import Deployment

STATUS_STYLE = {"ok": "SUCCESS", "warning": "WARNING", "skipped": "NOTICE", "failed": "ERROR"}


class Command(BaseCommand):
    # The system checks run as the first pre-check, where their findings are recorded.
    requires_system_checks: list[str] = []
    help = _(
        "Deploy a version: run the pre-checks, back up, migrate, collect static files, reload workers "
        "and verify; any failure after the backup restores the database. --dry-run only checks and "
        "prints the plan."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        # Django gives every command a --version flag that prints Django's version; this
        # command's --version names the release instead, so the later definition must win.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "--version",
            dest="release",
            required=True,
            metavar="VERSION",
            help=_("Version label to record, e.g. 1.4.0."),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Run the pre-checks and print the plan; change nothing.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbose = options["verbosity"] > 0

        def listener(deployment: Deployment, step: dict[str, Any]) -> None:
            if not verbose:
                return
            style = getattr(self.style, STATUS_STYLE.get(step["status"], "NOTICE"))
            self.stdout.write(
                f"{step['phase']}.{step['name']}: " + style(step["status"]) + f" ({step['duration_ms']} ms)"
            )
            if step["output"] and (options["verbosity"] > 1 or step["status"] != "ok"):
                for line in step["output"].splitlines():
                    self.stdout.write(f"    {line}")

        try:
            deployment = services.start_deployment(
                options["release"],
                dry_run=options["dry_run"],
                started_by=services.default_started_by("deploy command"),
                listener=listener,
            )
        except services.DeploymentError as error:
            raise CommandError(str(error)) from error

        if deployment.dry_run and deployment.plan:
            self.stdout.write(_("Plan:"))
            for number, item in enumerate(deployment.plan, 1):
                self.stdout.write(f"  {number}. {item}")
        summary = _("Deployment %(id)s of %(version)s: %(status)s") % {
            "id": deployment.pk,
            "version": deployment.version,
            "status": deployment.get_status_display(),
        }
        if deployment.status != Deployment.Status.SUCCEEDED:
            raise CommandError(f"{summary}. {deployment.error}")
        self.stdout.write(self.style.SUCCESS(summary))
