"""What every source section shares: unknown keys refused, the same scheduling fields, secrets read on demand.

A leaf of `daemon.sources`: it imports nothing of the daemon, so every source module and `daemon.settings` can use it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from collectors.errors import CertmonError
from collectors.secrets import read_secret_file, register_secret

#: (setting label, path) pairs `check-config` checks for existence
Paths = list[tuple[str, Path | None]]


class ConfigError(CertmonError):
    """The configuration is invalid; the message names the file and the field."""


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently disable a source."""

    model_config = ConfigDict(extra="forbid")


class SourceSettings(Strict):
    """Scheduling shared by every source."""

    enabled: bool = True
    interval_seconds: float = Field(300.0, gt=0)
    timeout_seconds: float = Field(60.0, gt=0)
    jitter_seconds: float = Field(10.0, ge=0)

    def timing(self) -> dict[str, float]:
        """The collector's timeout and interval keyword arguments."""
        return {"timeout": self.timeout_seconds, "interval": self.interval_seconds}


class FileSource(SourceSettings):
    """A single configuration file."""

    path: Path | None = None


def secret_text(value: SecretStr | None, file: Path | None) -> str:
    """A password from the environment or its file ('' when neither is set), registered for redaction."""
    if value is not None:
        register_secret(value.get_secret_value())
        return value.get_secret_value()
    if file is None:
        return ""
    try:
        return read_secret_file(str(file))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read secret file: {type(err).__name__}") from err


def secret_bytes(value: SecretStr | None, file: Path | None) -> bytes | None:
    """A password as bytes, or None when neither the value nor its file is set."""
    return secret_text(value, file).encode() if value is not None or file is not None else None
