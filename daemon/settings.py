"""Configuration: one YAML file plus CERTMON_* environment variables, validated by pydantic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from daemon.configcheck import unknown_environment, unknown_key_hint, unreadable_files
from daemon.noderoles import DEFAULT_NODE_ROLES
from daemon.retention import RetentionSettings
from daemon.sources.base import ConfigError, SourceSettings, Strict
from daemon.sources.registry import Sources
from daemon.sources.servicefabric import GatewayCertificateSettings

# Sections other modules name through this one, the configuration's entry point.
__all__ = ["ConfigError", "GatewayCertificateSettings", "Settings", "SourceSettings", "load_settings"]

DEFAULT_CONFIG = "certmon.yaml"
SECRET_KEYS = ("password", "token", "secret", "passphrase")


class ExpiryWindow(Strict):
    """Days before expiry at which a certificate of a role raises a warning and a critical finding."""

    warning_days: float = Field(ge=0)
    critical_days: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ExpiryWindow:
        if self.critical_days > self.warning_days:
            raise ValueError("critical_days must not exceed warning_days")
        return self


DEFAULT_EXPIRY = {
    "default": ExpiryWindow(warning_days=30, critical_days=14),
    "DataEncryption": ExpiryWindow(warning_days=90, critical_days=30),
    "ServiceFabricEncryption": ExpiryWindow(warning_days=90, critical_days=30),
}


# Roles whose key must be CAPI by default; the node roles table is daemon/noderoles.py.
SF_NODE_ROLES = ("ServiceFabric", "ServiceFabricClient", "ServiceFabricEncryption")


# Which service reads which key: Microsoft keeps this mapping in NodeTopologyDefinition.xml, which is not
# public (UNVERIFIED defaults): AXSF runs as the gMSA of refName gmsaAXSF, the LocalAgent as gmsaLocalAgent,
# Service Fabric (Fabric.exe) as NETWORK SERVICE (S-1-5-20).
DEFAULT_KEY_READERS = {
    "ServiceFabric": ("S-1-5-20",),
    "DataEncryption": ("gmsaAXSF",),
    "DataSigning": ("gmsaAXSF",),
    "SessionAuthentication": ("gmsaAXSF",),
    "Orchestrator": ("gmsaLocalAgent",),
}


class RuleSettings(Strict):
    """Knobs of the findings and the rotation checklist."""

    node_roles: dict[str, list[str]] = Field(
        default_factory=dict,
        description="node purpose -> roles its LocalMachine\\My must hold; merged over the built-in defaults",
    )
    csp_key_roles: list[str] = Field(
        default_factory=lambda: [*SF_NODE_ROLES, "DataEncryption", "DataSigning", "SessionAuthentication"],
        description="roles whose private key must live in a legacy CryptoAPI (CSP) provider, not CNG",
    )
    key_readers: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_KEY_READERS.items()},
        description="role -> accounts that must be able to read its private key on the nodes that hold it: "
        "a ConfigTemplate.xml ADServiceAccount refName (gmsaAXSF), DOMAIN\\account, or a SID (S-1-5-20)",
    )
    self_signed_roles: list[str] = Field(
        default_factory=lambda: [
            "ServiceFabricEncryption",
            "SessionAuthentication",
            "DataEncryption",
            "DataSigning",
            "RSAT",
        ],
        description="roles that may be self-signed in production",
    )
    rotation_lead_days: float = Field(
        default=14, ge=0, description="rotate-by deadline: days for change approval and a maintenance window"
    )
    reencryption_days: float = Field(
        default=14, ge=0, description="rotate-by deadline of DataEncryption: days the re-encryption job needs"
    )
    agent_updates_without_cluster_evidence: bool = Field(
        default=False,
        description="let the LocalAgent-side remediations apply without a Service Fabric gateway source (the "
        "operator confirms the configuration upgrade by hand); every such run is audited as OVERRIDDEN",
    )

    def roles_for_purpose(self, purpose: str) -> frozenset[str]:
        """The roles a node of this purpose must hold (purpose matched case-insensitively)."""
        merged = {k.lower(): tuple(v) for k, v in DEFAULT_NODE_ROLES.items()}
        merged.update({k.lower(): tuple(v) for k, v in self.node_roles.items()})
        return frozenset(merged.get(purpose.lower(), merged["default"]))


class ExporterSettings(Strict):
    """The HTTP listener for /metrics and /healthz."""

    listen_address: str = "127.0.0.1"
    port: int = Field(9877, ge=0, le=65535)
    web_config_file: Path | None = None
    #: stores (e.g. LocalMachine\Root, LocalMachine\CA) whose unreferenced certificates are exported as counts
    summarized_stores: list[str] = Field(default_factory=list)


class ApiSettings(Strict):
    """The status page and the remediation API: a listener of their own, on loopback by default.

    Reading (the page, `GET /api/...`, plans) needs whatever the listener's web config asks
    (TLS client certificate, basic auth); applying also needs the bearer token (`token_file`,
    or CERTMON_API__TOKEN) or a client certificate the web config's client CA verified and, when
    `client_subjects`/`client_thumbprints` are set, one they list.
    """

    enabled: bool = True
    listen_address: str = "127.0.0.1"
    #: unset: the exporter's port + 1 (9878), or an ephemeral port when the exporter's is 0
    port: int | None = Field(None, ge=0, le=65535)
    #: exporter-toolkit web config of this listener (TLS, client CA, basic auth); required off loopback
    web_config_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    #: client certificate subjects (RFC 4514, as `openssl x509 -subject -nameopt RFC2253` prints) allowed to apply
    client_subjects: list[str] = Field(default_factory=list)
    #: client certificate thumbprints (SHA-1) allowed to apply
    client_thumbprints: list[str] = Field(default_factory=list)
    #: how long an apply waits for another remediation of the environment before it is refused
    lock_wait_seconds: float = Field(10.0, ge=0)
    #: plans and applies run on this many worker threads, never on the HTTP threads
    workers: int = Field(2, ge=1, le=16)
    #: host names (besides localhost, this machine's name, the listen address and the TLS certificate's
    #: DNS names) that browsers and clients may use to reach the page and API; IP addresses always work
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("client_thumbprints")
    @classmethod
    def _thumbprints(cls, values: list[str]) -> list[str]:
        from collectors.certificate import normalize_thumbprint

        return [normalize_thumbprint(v) for v in values]

    def effective_port(self, exporter_port: int) -> int:
        """The port to bind: the configured one, else next to the exporter's."""
        if self.port is not None:
            return self.port
        return 0 if exporter_port == 0 else exporter_port + 1


class SimulatedTimeSettings(Strict):
    """Simulated time, for `certmon demo` only: from `since` on, certmon's clock runs `speed` times as fast.

    Every process reading the configuration (the daemon, `status`, `remediate`) then agrees on
    what time it is, so progress samples, history and audit records stay in order.
    """

    speed: float = Field(gt=0, le=1_000_000)
    #: the wall-clock moment at which simulated and real time coincide (with a time zone)
    since: datetime

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("since needs a time zone (e.g. 2026-11-27T12:00:00Z)")
        return value


class Settings(BaseSettings):
    """certmon's whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="CERTMON_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    environment: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    production: bool = False
    data_dir: Path = Path("certmon-data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: stderr log lines: text, logfmt (as Prometheus' exporters) or JSON
    log_format: Literal["text", "logfmt", "json"] = "text"
    exporter: ExporterSettings = Field(default_factory=ExporterSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    expiry: dict[str, ExpiryWindow] = Field(default_factory=dict)
    unreferenced_certificates: bool = True
    rules: RuleSettings = Field(default_factory=RuleSettings)
    sources: Sources = Field(default_factory=Sources)
    simulated_time: SimulatedTimeSettings | None = None
    #: SIGTERM/Ctrl+C ends the process within this many seconds, whatever a peer does (below TimeoutStopSec)
    stop_timeout_seconds: float = Field(90.0, gt=0, le=3600)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _real_time_in_production(self) -> Settings:
        if self.production and self.simulated_time is not None:
            raise ValueError("simulated_time is for the demo; a production environment runs on the real clock")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override the YAML file, which arrives as init values."""
        return (env_settings, init_settings)

    def expiry_window(self, role: str) -> ExpiryWindow:
        """The window for a role, falling back to the configured or built-in default."""
        merged = {**DEFAULT_EXPIRY, **self.expiry}
        return merged.get(role) or merged["default"]


def _secret_keys(data: Any, path: str = "") -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key.lower() in SECRET_KEYS and value not in (None, ""):
                yield where
            yield from _secret_keys(value, where)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _secret_keys(value, f"{path}[{index}]")


def _resolve_paths(model: BaseModel, base: Path) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            object.__setattr__(model, name, base / value)
        elif isinstance(value, BaseModel):
            _resolve_paths(value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    _resolve_paths(item, base)


def _describe(err: ValidationError, origin: str) -> str:
    lines = []
    for item in err.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        hint = unknown_key_hint(Settings, tuple(item["loc"])) if item["type"] == "extra_forbidden" else ""
        lines.append(f"{origin}: {field}: {item['msg']}{hint}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, *, required: bool = False) -> Settings:
    """Load the YAML file (when present) and the environment; ConfigError names file and field."""
    config_path = Path(path or os.environ.get("CERTMON_CONFIG") or DEFAULT_CONFIG)
    data: Any = {}
    if config_path.exists():
        try:
            text = config_path.read_text(encoding="utf-8-sig")
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{config_path}: invalid YAML: {err}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{config_path}: cannot read: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path}: expected a mapping at the top level")
        leaked = list(_secret_keys(data))
        if leaked:
            raise ConfigError(
                f"{config_path}: {leaked[0]}: secrets do not belong in the configuration file; "
                "use the matching *_file setting or a CERTMON_* environment variable"
            )
    elif required or path is not None or os.environ.get("CERTMON_CONFIG"):
        raise ConfigError(f"{config_path}: configuration file not found")
    else:
        raise ConfigError(
            f"no configuration: {DEFAULT_CONFIG} is not in {Path.cwd()}; give --config FILE or set CERTMON_CONFIG "
            "(certmon demo runs on a generated one)"
        )
    origin = f"{config_path} (or CERTMON_* environment)"
    typos = [name for name in unknown_environment(Settings) if "did you mean" in name]
    if typos:
        raise ConfigError("\n".join(f"environment: {name}: not a certmon setting" for name in typos))
    try:
        settings = Settings(**data)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None
    _resolve_paths(settings, config_path.resolve().parent)
    unreadable = list(unreadable_files(settings))
    if unreadable:
        raise ConfigError("\n".join(f"{origin}: {problem}" for problem in unreadable))
    return settings
