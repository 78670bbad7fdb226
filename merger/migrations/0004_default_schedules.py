# Creates the default django-celery-beat schedules from the registry in vpnmerger/periodic.py.

from django.db import migrations


def create_default_schedules(apps, schema_editor):
    from vpnmerger.periodic import install_default_schedules

    install_default_schedules(
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("merger", "0003_merge_settings"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    # Going back leaves the schedules in place, because they may have been edited in the admin.
    operations = [migrations.RunPython(create_default_schedules, migrations.RunPython.noop)]
