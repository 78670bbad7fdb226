# Fails on purpose, after 0001 has been applied and committed.

from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("failing_migration_app.0002_fail fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("failing_migration_app", "0001_initial")]

    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
