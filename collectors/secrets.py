"""Secret values known to this process, so that any text leaving it can be scrubbed."""

from __future__ import annotations

import threading

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
MASK = "********"


def register_secret(value: str | bytes | None) -> None:
    """Remember a secret (password, key passphrase) so redact() masks it."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    # One- and two-character values would mask ordinary text everywhere; such a
    # password cannot be protected by masking anyway.
    if len(text) >= 3:
        with _LOCK:
            _SECRETS.add(text)


def redact(text: str) -> str:
    """Replace every registered secret in text."""
    if not _SECRETS:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def read_secret_file(path: str) -> str:
    """A secret from a file: its first line, without the line ending; registered for redaction."""
    with open(path, encoding="utf-8-sig") as handle:
        value = handle.readline().rstrip("\r\n")
    register_secret(value)
    return value
