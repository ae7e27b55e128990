"""Logging set-up: text, logfmt or JSON lines on stderr (optionally the Windows Event Log), every record scrubbed of
registered secrets."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from datetime import UTC, datetime

from collectors.secrets import redact

LOG_FORMATS = ("text", "logfmt", "json")


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


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name}
        entry["msg"] = record.getMessage()
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """logfmt, as Prometheus and its exporters log: ts=... level=... logger=... msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one logfmt line."""
        pairs = [
            ("ts", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            ("msg", record.getMessage()),
        ]
        if record.exc_text:
            pairs.append(("exc", record.exc_text))
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in pairs)


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n\t') and value.isprintable():
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "logfmt":
        return LogfmtFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


class EventLogUnavailable(RuntimeError):
    """The Windows Event Log was asked for where it cannot be written."""


def _event_log_handler() -> logging.Handler:
    """The Windows Event Log (Application log, source `certmon`), through pywin32."""
    if importlib.util.find_spec("win32evtlogutil") is None:  # pywin32, Windows only
        raise EventLogUnavailable(
            "--log.eventlog: the Windows Event Log needs Windows and pywin32 (installed with certmon on Windows)"
        )
    from logging.handlers import NTEventLogHandler

    return NTEventLogHandler("certmon")


def setup_logging(level: str = "INFO", fmt: str = "text", *, event_log: bool = False) -> None:
    """Log to stderr in `fmt` (and to the Windows Event Log when asked); idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_certmon", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(_formatter(fmt))
    if event_log:
        handlers.append(_event_log_handler())
    for handler in handlers:
        handler.addFilter(RedactingFilter())
        handler._certmon = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every job run at INFO; keep it to warnings.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
