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
        secret = secret_bytes(self.password, self.password_file)
        return secret.decode() if secret is not None else ""


def collector(section: WinRMSource) -> Collector | None:
    """The collector, when nodes are configured; ConfigError when the transport lacks its credentials."""
    if not section.enabled or (section.config_template is None and not section.nodes):
        return None
    password = section.password_text()
    if section.transport != "kerberos" and not (section.username and password):
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
