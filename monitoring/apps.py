from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"
    verbose_name = _("monitoring")

    def ready(self) -> None:
        # Importing the modules registers the built-in health checks and recovery actions.
        from monitoring import builtin_checks, recovery  # noqa: F401
