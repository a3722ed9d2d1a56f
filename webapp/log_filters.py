"""Logging filters for the server's log."""

from __future__ import annotations

import logging


class OneLineRefusals(logging.Filter):
    """Django logs each refused request (403) with the PermissionDenied's traceback; keep its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
