"""The database check against a PostgreSQL address where nothing listens.

This module has no django_db mark on purpose: the test runner's per-test guard refuses connections
to aliases a test did not declare, and the alias here exists only inside the test.
"""

from __future__ import annotations

import socket

from django.db import connections
from django.utils import timezone

from monitoring import builtin_checks
from monitoring.checks import CheckContext, registered_checks, run_check


def test_database_check_critical_when_unreachable(monkeypatch, django_db_blocker):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    alias = "monitoring_down"
    connections.settings[alias] = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPTIONS": {"connect_timeout": 2},
    }
    monkeypatch.setattr(builtin_checks, "DATABASE_ALIAS", alias)
    spec = registered_checks()["database"]
    try:
        with django_db_blocker.unblock():
            result = run_check(spec, CheckContext(now=timezone.now()), spec.limits)
    finally:
        connections[alias].close()
        del connections.settings[alias]
    assert result.status == "critical"
    assert "database unavailable" in result.message
