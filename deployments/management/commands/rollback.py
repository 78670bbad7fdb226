"""`manage.py rollback [BACKUP_ID]`: restore the database from a deployment backup by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from deployments import services
from deployments.models import Deployment


class Command(BaseCommand):
    help = _(
        "Restore the database from a deployment's database backup (the newest one when no id is given) "
        "and record the version from before that deployment as current."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "backup_id", nargs="?", type=int, help=_("Id of a database Backup (see the admin).")
        )
        parser.add_argument(
            "--exports",
            action="store_true",
            help=_("Also unpack the set's exports backup when its folder no longer exists."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def listener(deployment: Deployment, step: dict[str, Any]) -> None:
            if options["verbosity"] > 0:
                self.stdout.write(f"{step['phase']}.{step['name']}: {step['status']}")
                if step["status"] != "ok" and step["output"]:
                    self.stdout.write(f"    {step['output']}")

        try:
            deployment = services.rollback(
                options["backup_id"],
                started_by=services.default_started_by("rollback command"),
                with_exports=options["exports"],
                listener=listener,
            )
        except services.DeploymentError as error:
            raise CommandError(str(error)) from error
        if deployment.status != Deployment.Status.SUCCEEDED:
            raise CommandError(
                _("Rollback %(id)s failed: %(error)s") % {"id": deployment.pk, "error": deployment.error}
            )
        self.stdout.write(
            self.style.SUCCESS(
                _("Rolled back from backup %(backup)s; current version: %(version)s")
                % {"backup": deployment.backup_id, "version": deployment.version or _("none recorded")}
            )
        )
