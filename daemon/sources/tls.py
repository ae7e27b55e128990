"""The `tls` source: TLS and TDS endpoints (AOS URL, SF gateway, AD FS, SSRS, SQL Server)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from collectors.base import Collector
from collectors.tls.collector import DEFAULT_PORTS, Endpoint, TlsCollector
from daemon.sources.base import Paths, SourceSettings, Strict


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


def collector(section: TlsSource) -> Collector | None:
    """The collector, when an endpoint is configured."""
    if not section.enabled or not section.endpoints:
        return None
    endpoints = [
        Endpoint(
            name=e.target(),
            host=e.host,
            port=e.port or DEFAULT_PORTS[e.kind],
            kind=e.kind,
            sni=e.sni,
            addresses=tuple(e.addresses),
            ca_bundle=e.ca_bundle,
            role=e.role,
        )
        for e in section.endpoints
    ]
    return TlsCollector(
        endpoints,
        section.ca_bundle,
        concurrency=section.concurrency,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def paths(section: TlsSource) -> Paths:
    """The CA bundles this source reads."""
    return [
        ("sources.tls.ca_bundle", section.ca_bundle),
        *((f"sources.tls.endpoints.{i}.ca_bundle", e.ca_bundle) for i, e in enumerate(section.endpoints)),
    ]
