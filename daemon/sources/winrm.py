"""The `winrm` source: Windows nodes' certificate stores, key providers and SQL Server TLS certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from collectors.base import Collector
from collectors.certificate import normalize_thumbprint
from collectors.winrm import WinRMCollector, WinRMOptions
from collectors.winrm.collector import split_address
from collectors.winrm.script import inventory_command
from daemon.sources.base import ConfigError, Paths, SourceSettings, secret_bytes


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
    #: credssp delegates the account's password to the node (the double hop; docs/credentials-rotate.md)
    transport: Literal["ntlm", "https-basic", "kerberos", "negotiate", "https-negotiate", "credssp"] = "ntlm"
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
    #: also read C:\ProgramData\SF\...\*.Package.Current.xml thumbprint settings (one more command per node)
    package_settings: bool = False

    @model_validator(mode="after")
    def _check(self) -> WinRMSource:
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
        from collectors.winrm.transport import credssp_unavailable_reason

        missing = unavailable_reason() if self.enabled and self.transport in NEGOTIATE_TRANSPORTS else None
        if self.enabled and self.transport == "credssp":
            missing = credssp_unavailable_reason()
        return f"sources.winrm: {missing}" if missing else None

    def password_text(self) -> str:
        """The WinRM password from the environment or its file ('' when neither is set)."""
        secret = secret_bytes(self.password, self.password_file)
        return secret.decode() if secret is not None else ""


def _check_negotiate(section: WinRMSource) -> WinRMSource:
    negotiate = section.transport in ("negotiate", "https-negotiate")
    if section.allow_ntlm and not negotiate:
        raise ValueError("allow_ntlm chooses NTLM fallback for transport negotiate or https-negotiate")
    if negotiate and section.has_password() and not section.username:
        raise ValueError("a password without username: name the account, or drop the password to log on as the service")
    return section


def collector(section: WinRMSource) -> Collector | None:
    """The collector, when nodes are configured; ConfigError when the transport lacks its credentials."""
    if not section.enabled or (section.config_template is None and not section.nodes):
        return None
    password = section.password_text()
    if section.transport not in ("kerberos", "negotiate", "https-negotiate") and not (section.username and password):
        raise ConfigError(
            f"sources.winrm: transport {section.transport} needs username and a password "
            "(CERTMON_SOURCES__WINRM__PASSWORD or password_file)"
        )
    options = WinRMOptions(
        transport=section.transport,
        port=section.port,
        username=section.username,
        password=password,
        ca_bundle=str(section.ca_bundle) if section.ca_bundle else None,
        server_thumbprint=section.server_thumbprint,
        operation_timeout=section.operation_timeout_seconds,
        allow_ntlm=section.allow_ntlm,
        package_settings=section.package_settings,
        spn_service=section.spn_service,
        stores=tuple(section.stores),
    )
    return WinRMCollector(
        options,
        nodes=section.nodes,
        addresses=section.addresses,
        config_template=section.config_template,
        use_template_addresses=section.use_template_addresses,
        concurrency=section.concurrency,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def paths(section: WinRMSource) -> Paths:
    """Files this source reads."""
    return [
        ("sources.winrm.config_template", section.config_template),
        ("sources.winrm.ca_bundle", section.ca_bundle),
        ("sources.winrm.password_file", section.password_file),
    ]
