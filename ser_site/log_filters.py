"""Logging filters named in ``settings.LOGGING``."""

from __future__ import annotations

import logging

__all__ = ["NoClientErrorTracebacks"]


class NoClientErrorTracebacks(logging.Filter):
    """Drop the traceback Django attaches to its log line for a 4xx answer.

    A 403 (PermissionDenied) or 400 (SuspiciousOperation) is the client's doing and fully
    described by the line itself ("Forbidden (Permission denied): /path"); only a server error
    (5xx) needs its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
