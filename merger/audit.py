"""Record who changed the configuration, when and what, in Django's admin log (LogEntry)."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model

ACTIONS = {"added": ADDITION, "changed": CHANGE, "deleted": DELETION}


def snapshot(instance: Model, fields: list[str]) -> dict[str, Any]:
    """Return the current values of `fields`, for comparing after an edit."""
    return {name: getattr(instance, name) for name in fields}


def record_change(
    user: Any, instance: Model, action: str, before: dict[str, Any] | None = None
) -> LogEntry | None:
    """Store one LogEntry naming each changed field with its old and new value.

    `before` comes from `snapshot` taken before the edit; an edit that changed nothing is not logged.
    """
    changes = []
    if before is not None:
        for name, old in before.items():
            new = getattr(instance, name)
            if old != new:
                changes.append(f"{name}: {old!r} -> {new!r}")
        if action == "changed" and not changes:
            return None
    message = "; ".join(changes) if changes else action
    return LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        action_flag=ACTIONS[action],
        change_message=message[:2000],
    )


def recent_changes(models: list[type[Model]], limit: int = 20) -> list[LogEntry]:
    types = ContentType.objects.get_for_models(*models).values()
    return list(
        LogEntry.objects.filter(content_type__in=types)
        .select_related("user", "content_type")
        .order_by("-action_time")[:limit]
    )
