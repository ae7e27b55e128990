"""The `adfs` source: AD FS farms by base URL (metadata, discovery keys, the SSL certificate)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from collectors.adfs.collector import AdfsCollector, base_url
from collectors.base import Collector
from daemon.sources.base import Paths, SourceSettings


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
        for url in urls:
            base_url(url)
        return urls


def collector(section: AdfsSource) -> Collector | None:
    """The collector, when a farm is configured."""
    if not section.enabled or not section.urls:
        return None
    return AdfsCollector(
        section.urls,
        section.ca_bundle,
        resolve=section.resolve,
        require_valid_tls=section.require_valid_tls,
        timeout=section.timeout_seconds,
        interval=section.interval_seconds,
    )


def paths(section: AdfsSource) -> Paths:
    """The CA bundle this source reads."""
    return [("sources.adfs.ca_bundle", section.ca_bundle)]
