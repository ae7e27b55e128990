"""The exporter-style command-line flags (`--web.listen-address`, ...) applied over the configuration."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.sources.base import ConfigError

if TYPE_CHECKING:
    from daemon.settings import Settings


def apply_flags(settings: Settings, args: argparse.Namespace) -> None:
    """The exporter-style flags override the configuration file (as node_exporter's flags do)."""
    if getattr(args, "web_listen_address", None):
        host, port = parse_listen_address(args.web_listen_address)
        settings.exporter.listen_address, settings.exporter.port = host, port
    if getattr(args, "web_config_file", None):
        settings.exporter.web_config_file = Path(args.web_config_file).resolve()
    if getattr(args, "log_format", None):
        settings.log_format = args.log_format


def parse_listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (every address) or `[IPv6]:PORT`; ConfigError naming the flag."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--web.listen-address: {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9877")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - `:PORT` means every address, as in Prometheus' exporters
    return host, int(port)
