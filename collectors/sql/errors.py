"""pyodbc and sqlite3 exceptions turned into reasons, by SQLSTATE and by the drivers' words.

ODBC drivers report most connection failures as SQLSTATE 08001 and say what happened only in
the text, so both are read. The text is shortened and never contains the connection string.
"""

from __future__ import annotations

import re
import sqlite3

from collectors.errors import Reason

# (reason, patterns in the lower-cased driver message), tried in order.
_MESSAGES: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (
        Reason.AUTH_FAILED,
        (
            "login failed",
            "password authentication failed",
            "authentication failed",
            "no pg_hba.conf entry",
            "cannot generate sspi context",
            "untrusted domain",
        ),
    ),
    (
        Reason.TLS_ERROR,
        (
            "ssl provider",
            "certificate verify failed",
            "certificate chain",
            "ssl error",
            "ssl connection",
            "handshakes before login",
            "encryption not supported",
        ),
    ),
    (Reason.TIMEOUT, ("timeout expired", "timed out", "statement timeout", "query timeout")),
    (Reason.CONNECTION_REFUSED, ("connection refused", "actively refused")),
    (
        Reason.UNREACHABLE,
        (
            "could not translate host name",
            "name or service not known",
            "server is not found or not accessible",
            "no route to host",
            "network is unreachable",
            "communication link failure",
            "server closed the connection",
            "could not connect",
        ),
    ),
    (
        # The peer answered, but not in the database's protocol (a proxy, a wrong port, a broken stream).
        Reason.PROTOCOL_ERROR,
        (
            "expected authentication request from server",
            "invalid response from server",
            "unexpected message type",
            "protocol error",
            "incorrect prelogin packet",
            "tds stream",
        ),
    ),
    (
        Reason.PERMISSION_DENIED,
        ("permission denied", "permission was denied", "is not able to access the database", "readonly", "read-only"),
    ),
    (
        Reason.NOT_FOUND,
        ("does not exist", "invalid object name", "cannot open database", "no such table", "invalid column name"),
    ),
)
# SQLSTATE classes that decide on their own.
_STATES = {
    "28000": Reason.AUTH_FAILED,
    "28P01": Reason.AUTH_FAILED,
    "HYT00": Reason.TIMEOUT,
    "HYT01": Reason.TIMEOUT,
    "57014": Reason.TIMEOUT,
    "42501": Reason.PERMISSION_DENIED,
    "42S02": Reason.NOT_FOUND,
    "42P01": Reason.NOT_FOUND,
    "42S22": Reason.NOT_FOUND,
    "42703": Reason.NOT_FOUND,
    "IM002": Reason.CONFIG_ERROR,
    "IM003": Reason.CONFIG_ERROR,
}
_PREFIX = re.compile(r"^(\[[^\]]*\])+\s*")
MAX_MESSAGE = 300


def _driver_text(err: Exception) -> tuple[str, str]:
    args: tuple[object, ...] = tuple(getattr(err, "args", ()))
    state = str(args[0]) if len(args) >= 2 else ""
    text = str(args[1]) if len(args) >= 2 else str(args[0] if args else err)
    # "[Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Login failed ... (18456) (SQLDriverConnect)"
    text = re.sub(r"\s*\((SQL\w+)\)\s*$", "", text)
    text = re.sub(r"\s*\(\d+\)\s*$", "", text)
    text = _PREFIX.sub("", text)
    # psqlODBC wraps the server's message: "ERROR: <message>;\nError while executing the query".
    text = re.sub(r";?\s*Error while executing the query\s*$", "", text)
    text = re.sub(r"^(ERROR|FATAL):\s*", "", text.strip())
    text = " ".join(text.replace(";", "; ").split())
    return state, text[:MAX_MESSAGE] + ("..." if len(text) > MAX_MESSAGE else "")


def classify_odbc(err: Exception) -> tuple[Reason, str]:
    """The reason and a short message for a pyodbc exception."""
    state, text = _driver_text(err)
    lower = text.lower()
    if state in ("IM002", "01000") and "driver" in lower:
        return Reason.CONFIG_ERROR, f"ODBC driver not installed or not found: {text}"
    known = _STATES.get(state)
    if known is not None:
        return known, text
    for reason, patterns in _MESSAGES:
        if any(p in lower for p in patterns):
            return reason, text
    return Reason.DATABASE_ERROR, f"{text} (SQLSTATE {state})" if state else text


def classify_sqlite(err: Exception) -> tuple[Reason, str]:
    """The reason and a short message for a sqlite3 exception."""
    text = " ".join(str(err).split())[:MAX_MESSAGE]
    lower = text.lower()
    if "interrupted" in lower:
        return Reason.TIMEOUT, "query timeout expired"
    if "unable to open" in lower:
        return Reason.NOT_FOUND, f"cannot open the database file: {text}"
    if "readonly" in lower or "read-only" in lower:
        return Reason.PERMISSION_DENIED, text
    if "no such table" in lower or "no such column" in lower:
        return Reason.NOT_FOUND, text
    if "locked" in lower or "busy" in lower:
        return Reason.TIMEOUT, text
    if isinstance(err, sqlite3.DatabaseError) and "not a database" in lower:
        return Reason.PARSE_ERROR, text
    return Reason.DATABASE_ERROR, text
