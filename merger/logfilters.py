"""Logging filter that keeps subscription tokens out of log records.

A token in a /sub/<token> URL is the only credential a client has, so request logs (Django's
"Not Found: <path>" and "Internal Server Error: <path>", daphne's runserver access lines) must not
carry it. This module imports nothing from Django models, because settings.LOGGING loads it
before the apps are ready.
"""

from __future__ import annotations

import logging
import re

SUBSCRIPTION_PATH_RE = re.compile(r"(/sub/)[^/?#\s\"']+")
REDACTED = "<redacted>"


def redact_tokens(text: str) -> str:
    """Return `text` with the token part of every /sub/<token> path replaced by <redacted>."""
    if "/sub/" not in text:
        return text
    return SUBSCRIPTION_PATH_RE.sub(r"\1" + REDACTED, text)


class RedactSubscriptionTokens(logging.Filter):
    """Rewrite a record's message with the tokens of /sub/ paths redacted; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
