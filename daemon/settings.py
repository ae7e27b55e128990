"""Configuration: one YAML file plus CERTMON_* environment variables, validated by pydantic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collectors.errors import CertmonError
from collectors.secrets import read_secret_file, register_secret
from daemon.sqlsettings import AgentShareSource, CredentialsSource, SqlSource

DEFAULT_CONFIG = "certmon.yaml"
SECRET_KEYS = ("password", "token", "secret", "passphrase")


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


class ConfigTemplateSource(SourceSettings):
    """The Infrastructure / InfrastructureOld pair (folders or ConfigTemplate.xml paths)."""

    infrastructure: Path | None = None
    infrastructure_old: Path | None = None


class FileSource(SourceSettings):
    """A single configuration file."""

    path: Path | None = None


class CertFolderSource(SourceSettings):
    """Folders of exported certificate files, one per node."""

    path: Path | None = None
    nodes: list[str] = Field(default_factory=list)
    password: SecretStr | None = None
    password_file: Path | None = None

    def password_bytes(self) -> bytes | None:
        """The PFX password from the environment or its file."""
        return _secret_bytes(self.password, self.password_file)


def _secret_bytes(value: SecretStr | None, file: Path | None) -> bytes | None:
    if value is not None:
        register_secret(value.get_secret_value())
        return value.get_secret_value().encode()
    if file is not None:
        try:
            return read_secret_file(str(file)).encode()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file}: cannot read secret file: {type(err).__name__}") from err
    return None


class AdfsSource(SourceSettings):
    """AD FS farms by base URL: metadata, discovery keys and the SSL certificate."""

    interval_seconds: float = Field(300.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    urls: list[str] = Field(default_factory=list)
    #: CA bundle for the SSL certificate; unset: the system's trusted roots
    ca_bundle: Path | None = None
    #: host name -> address to connect to (one node of a farm, or a name DNS does not know)
    resolve: dict[str, str] = Field(default_factory=dict)
    #: refuse to read the documents when the SSL chain does not validate
    require_valid_tls: bool = False

    @field_validator("urls")
    @classmethod
    def _https(cls, urls: list[str]) -> list[str]:
        from collectors.adfs import base_url

        for url in urls:
            base_url(url)
        return urls


class TlsEndpointSettings(Strict):
    """One endpoint to probe: every address behind `host` (or the listed `addresses`)."""

    name: str | None = None
    host: str = Field(min_length=1)
    #: default 443 for tls, 1433 for tds and tds8
    port: int | None = Field(None, ge=1, le=65535)
    #: tls, SQL Server TDS 7.x (TLS inside PRELOGIN), or TDS 8 strict encryption
    kind: Literal["tls", "tds", "tds8"] = "tls"
    #: SNI and the name the certificate must carry; unset: the host, "": send none
    sni: str | None = None
    #: nodes behind a load balancer, probed with the host's SNI instead of what the name resolves to
    addresses: list[str] = Field(default_factory=list)
    ca_bundle: Path | None = None
    #: role the presented certificate plays (ServiceFabric, SQLCluster, ADFSSSL...), for windows and labels
    role: str = ""

    def target(self) -> str:
        """The endpoint's name, by default host:port."""
        from collectors.tls import DEFAULT_PORTS

        return self.name or f"{self.host}:{self.port or DEFAULT_PORTS[self.kind]}"


class TlsSource(SourceSettings):
    """TLS and TDS endpoints (AOS URL, SF gateway, AD FS, SSRS, SQL Server)."""

    interval_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(10.0, gt=0)
    concurrency: int = Field(4, ge=1, le=64)
    ca_bundle: Path | None = None
    endpoints: list[TlsEndpointSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TlsSource:
        names = [e.target() for e in self.endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique; give a `name` to: {', '.join(duplicates)}")
        return self


class WinRMSource(SourceSettings):
    """Windows nodes over WinRM: certificate stores, key providers, SQL Server TLS certificates.

    Nodes are the VMs and SQL VMs of `config_template` (an Infrastructure folder or ConfigTemplate.xml)
    plus `nodes`; each is reached at `addresses[node]` (`host` or `host:port`), else at its template
    ipAddress when `use_template_addresses`, else at its name. Transports: `ntlm` (HTTP 5985, NTLM
    with message encryption), `https-basic` (HTTPS 5986, Basic over TLS validated against `ca_bundle`
    and/or pinned to `server_thumbprint`), `kerberos` (HTTP 5985, Kerberos with message encryption:
    needs the pykerberos package on Linux or winkerberos on Windows and a ticket from kinit or the
    Windows logon; `username` optionally names the principal). The password comes from
    CERTMON_SOURCES__WINRM__PASSWORD or `password_file`, never from this file.
    """

    config_template: Path | None = None
    use_template_addresses: bool = False
    nodes: list[str] = Field(default_factory=list)
    addresses: dict[str, str] = Field(default_factory=dict)
    transport: Literal["ntlm", "https-basic", "kerberos"] = "ntlm"
    port: int | None = Field(None, ge=1, le=65535)
    ca_bundle: Path | None = None
    server_thumbprint: str | None = None
    username: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    stores: list[str] = Field(default_factory=lambda: ["LocalMachine\\My"])
    concurrency: int = Field(16, ge=1, le=512)
    operation_timeout_seconds: float = Field(20.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> WinRMSource:
        from collectors.certificate import normalize_thumbprint
        from collectors.winrm.collector import split_address
        from collectors.winrm.script import inventory_command

        inventory_command(self.stores)
        for node, address in self.addresses.items():
            try:
                split_address(address, 1)
            except ValueError as err:
                raise ValueError(f"addresses.{node}: {err}") from None
        if self.server_thumbprint is not None:
            self.server_thumbprint = normalize_thumbprint(self.server_thumbprint)
            if self.transport != "https-basic":
                raise ValueError("server_thumbprint pins an HTTPS certificate: use it with transport https-basic")
        if self.ca_bundle is not None and self.transport != "https-basic":
            raise ValueError("ca_bundle validates an HTTPS certificate: use it with transport https-basic")
        return self

    def password_text(self) -> str:
        """The WinRM password from the environment or its file ('' when neither is set)."""
        secret = _secret_bytes(self.password, self.password_file)
        return secret.decode() if secret is not None else ""


class GatewayCertificateSettings(Strict):
    """A client certificate for the Service Fabric gateway: a PFX, or a PEM certificate with its key."""

    path: Path
    #: PEM private key when it is not in the certificate file
    key_path: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    def password_bytes(self) -> bytes | None:
        """The PFX or key password from the environment or its file."""
        return _secret_bytes(self.password, self.password_file)


class ServiceFabricSource(SourceSettings):
    """The cluster's HTTP gateway (GetClusterConfiguration, upgrade status, health, applications)."""

    interval_seconds: float = Field(120.0, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    #: the target name (default: the first gateway's host)
    name: str | None = None
    #: https://node:19080 URLs, tried in order when a node does not answer
    gateways: list[str] = Field(default_factory=list)
    #: host name -> address to connect to
    resolve: dict[str, str] = Field(default_factory=dict)
    #: CA bundle that validates the gateway's certificate (unset, without pins: the system's roots)
    ca_bundle: Path | None = None
    #: accept the gateway when its certificate has one of these thumbprints (pin old and new during a rotation)
    server_thumbprints: list[str] = Field(default_factory=list)
    #: the name the gateway's certificate must carry (default: the URL's host)
    server_name: str | None = None
    #: certificate for reading (a read-only client is enough)
    client_certificate: GatewayCertificateSettings | None = None
    #: admin certificates for the SF remediations; the one the running configuration lists as admin is used
    admin_certificates: list[GatewayCertificateSettings] = Field(default_factory=list)
    #: which nodes' health to read for certificate-expiry events: unhealthy (default), all, none
    node_health: Literal["unhealthy", "all", "none"] = "unhealthy"
    #: application parameter -> certificate role, over the built-in defaults
    parameter_roles: dict[str, str] = Field(default_factory=dict)
    #: an upgrade that spends longer than this on one upgrade domain is stuck
    upgrade_stuck_after_minutes: float = Field(60.0, gt=0)
    #: how long `remediate --apply` follows a configuration upgrade it started
    follow_upgrade_seconds: float = Field(60.0, ge=0)

    @field_validator("gateways")
    @classmethod
    def _https(cls, urls: list[str]) -> list[str]:
        from collectors.servicefabric.client import GatewayUrl

        for url in urls:
            GatewayUrl.parse(url)
        return urls

    @field_validator("server_thumbprints")
    @classmethod
    def _thumbprints(cls, values: list[str]) -> list[str]:
        from collectors.certificate import normalize_thumbprint

        return [normalize_thumbprint(v) for v in values]

    def target(self) -> str:
        """The cluster's target name."""
        from collectors.servicefabric.client import GatewayUrl

        return self.name or (GatewayUrl.parse(self.gateways[0]).host if self.gateways else "servicefabric")


class Sources(Strict):
    """Every source certmon can read; a source without its location is off."""

    configtemplate: ConfigTemplateSource = Field(default_factory=ConfigTemplateSource)
    clusterconfig: FileSource = Field(default_factory=FileSource)
    localagent: FileSource = Field(default_factory=FileSource)
    certfolder: CertFolderSource = Field(default_factory=CertFolderSource)
    adfs: AdfsSource = Field(default_factory=AdfsSource)
    tls: TlsSource = Field(default_factory=TlsSource)
    winrm: WinRMSource = Field(default_factory=WinRMSource)
    servicefabric: ServiceFabricSource = Field(default_factory=ServiceFabricSource)
    sql: SqlSource = Field(default_factory=SqlSource)
    agentshare: AgentShareSource = Field(default_factory=AgentShareSource)
    credentials: CredentialsSource = Field(default_factory=CredentialsSource)


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


# Which certificate roles each node purpose (ConfigTemplate NodeType@purpose; "SQL" for the
# SQLCluster VMs) must hold in LocalMachine\My, as the Infrastructure scripts install them.
# A purpose not listed takes the "default" entry (every Service Fabric node holds the cluster,
# client and encipherment certificates).
SF_NODE_ROLES = ("ServiceFabric", "ServiceFabricClient", "ServiceFabricEncryption")
DEFAULT_NODE_ROLES: dict[str, tuple[str, ...]] = {
    "default": SF_NODE_ROLES,
    "AOS": (
        *SF_NODE_ROLES,
        "SessionAuthentication",
        "DataEncryption",
        "DataSigning",
        "FinancialReporting",
        "ReportingService",
        "RSAT",
    ),
    "Orchestrator": (*SF_NODE_ROLES, "Orchestrator"),
    "ReportServer": (*SF_NODE_ROLES, "ReportingService", "SSRSHTTPS"),
    "MR": (*SF_NODE_ROLES, "FinancialReporting"),
    "SQL": ("SQLCluster",),
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
    exporter: ExporterSettings = Field(default_factory=ExporterSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    expiry: dict[str, ExpiryWindow] = Field(default_factory=dict)
    unreferenced_certificates: bool = True
    rules: RuleSettings = Field(default_factory=RuleSettings)
    sources: Sources = Field(default_factory=Sources)
    simulated_time: SimulatedTimeSettings | None = None

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
        lines.append(f"{origin}: {field}: {item['msg']}")
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
    elif required or path is not None:
        raise ConfigError(f"{config_path}: configuration file not found")
    origin = f"{config_path} (or CERTMON_* environment)"
    try:
        settings = Settings(**data)
    except ValidationError as err:
        raise ConfigError(_describe(err, origin)) from None
    _resolve_paths(settings, config_path.resolve().parent)
    return settings
