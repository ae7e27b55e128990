"""One small error hierarchy: every source failure becomes a CollectorError with a closed reason."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a source failed; a closed set so metrics and alerts can rely on it."""

    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"
    HTTP_ERROR = "http_error"
    BAD_OUTPUT = "bad_output"
    SCRIPT_ERROR = "script_error"
    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    PARSE_ERROR = "parse_error"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason name, not a password
    CONFIG_ERROR = "config_error"
    DATABASE_ERROR = "database_error"
    INTERNAL_ERROR = "internal_error"


class CertmonError(Exception):
    """Base of every error certmon raises on purpose."""


class CollectorError(CertmonError):
    """A source could not be read; names the source and the reason, never a secret."""

    def __init__(self, source: str, reason: Reason, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.reason = reason
        self.message = message


class CertificateError(CollectorError):
    """A certificate file or blob could not be parsed."""


class ThumbprintError(CertmonError, ValueError):
    """A string that should be a thumbprint is not 40 hexadecimal digits."""


def os_error_reason(err: OSError) -> Reason:
    """Map a file-system error to a reason."""
    if isinstance(err, FileNotFoundError | NotADirectoryError):
        return Reason.NOT_FOUND
    if isinstance(err, PermissionError):
        return Reason.PERMISSION_DENIED
    if isinstance(err, ConnectionRefusedError):
        return Reason.CONNECTION_REFUSED
    if isinstance(err, TimeoutError):
        return Reason.TIMEOUT
    return Reason.UNREACHABLE


def file_error(path: str, err: OSError) -> CollectorError:
    """Turn an OSError on a file into a CollectorError naming the file."""
    reason = os_error_reason(err)
    text = {
        Reason.NOT_FOUND: "file not found",
        Reason.PERMISSION_DENIED: "permission denied",
    }.get(reason, err.strerror or type(err).__name__)
    return CollectorError(path, reason, text)
