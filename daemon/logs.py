"""Logging set-up: one format, and every record scrubbed of registered secrets."""

from __future__ import annotations

import logging
import sys

from collectors.secrets import redact


class RedactingFilter(logging.Filter):
    """Masks registered secrets in the message and in any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record with secrets masked."""
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        return True


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_certmon", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler._certmon = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
