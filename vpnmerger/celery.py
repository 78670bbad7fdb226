"""The Celery application. Tasks are found in each app's tasks.py."""

import os

from celery import Celery

# Celery's worker starts outside manage.py, so it needs the settings module named here.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vpnmerger.settings")

app = Celery("vpnmerger")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
