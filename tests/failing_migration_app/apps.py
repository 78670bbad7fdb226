from django.apps import AppConfig


class FailingMigrationAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tests.failing_migration_app"
    label = "failing_migration_app"
