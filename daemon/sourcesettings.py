"""Source sections of the configuration (every source but SQL, the agent share and Credentials.json), and the
bases every section shares: unknown keys refused, the same scheduling fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collectors.errors import CertmonError
from collectors.secrets import read_secret_file, register_secret


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


def _secret_bytes(value: SecretStr | None, file: Path | None) -> bytes | None:
    return secret_text(value, file).encode() if value is not None or file is not None else None


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
    Windows logon; `username` optionally names the principal), `negotiate` (HTTP 5985) and
    `https-negotiate` (HTTPS 5986, channel binding): Kerberos as the service's own identity (a gMSA
    through SSPI; on Linux the ccache or KRB5_CLIENT_KTNAME keytab), no password needed, NTLM only
    with `allow_ntlm`. The password comes from CERTMON_SOURCES__WINRM__PASSWORD or `password_file`,
    never from this file.
    """

    config_template: Path | None = None
    use_template_addresses: bool = False
    nodes: list[str] = Field(default_factory=list)
    addresses: dict[str, str] = Field(default_factory=dict)
    transport: Literal["ntlm", "https-basic", "kerberos", "negotiate", "https-negotiate"] = "ntlm"
    port: int | None = Field(None, ge=1, le=65535)
    ca_bundle: Path | None = None
    server_thumbprint: str | None = None
    username: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    stores: list[str] = Field(default_factory=lambda: ["LocalMachine\\My"])
    concurrency: int = Field(16, ge=1, le=512)
    operation_timeout_seconds: float = Field(20.0, gt=0)
    #: negotiate: fall back to NTLM when Kerberos is impossible (needs username and password)
    allow_ntlm: bool = False
    #: negotiate: service class of the nodes' SPNs, SERVICE/<node host>
    spn_service: Literal["HTTP", "WSMAN"] = "HTTP"

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
            if not self.transport.startswith("https-"):
                raise ValueError("server_thumbprint pins an HTTPS certificate: use it with an https- transport")
        if self.ca_bundle is not None and not self.transport.startswith("https-"):
            raise ValueError("ca_bundle validates an HTTPS certificate: use it with an https- transport")
        return _check_negotiate(self)

    def auth_summary(self) -> str:
        """Which credentials and protection the nodes see, for check-config (never the secret)."""
        from collectors.winrm.negotiate import describe_winrm_auth

        password = self.has_password()
        return describe_winrm_auth(self.transport, self.username, password, self.allow_ntlm, self.spn_service)

    def has_password(self) -> bool:
        """True when a password is configured (environment or file), without reading it."""
        return self.password is not None or self.password_file is not None

    def auth_problem(self) -> str | None:
        """Why the configured logon cannot work in this installation (check-config), None when it can."""
        from collectors.winrm.negotiate import NEGOTIATE_TRANSPORTS, unavailable_reason

        missing = unavailable_reason() if self.enabled and self.transport in NEGOTIATE_TRANSPORTS else None
        return f"sources.winrm: {missing}" if missing else None

    def password_text(self) -> str:
        """The WinRM password from the environment or its file ('' when neither is set)."""
        secret = _secret_bytes(self.password, self.password_file)
        return secret.decode() if secret is not None else ""


def _check_negotiate(section: WinRMSource) -> WinRMSource:
    negotiate = section.transport in ("negotiate", "https-negotiate")
    if section.allow_ntlm and not negotiate:
        raise ValueError("allow_ntlm chooses NTLM fallback for transport negotiate or https-negotiate")
    if negotiate and section.has_password() and not section.username:
        raise ValueError("a password without username: name the account, or drop the password to log on as the service")
    return section


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
