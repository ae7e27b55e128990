"""Debian's prometheus-blackbox-exporter on loopback with a generated configuration, for side-by-side runs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

BINARY_NAMES = ("prometheus-blackbox-exporter", "blackbox_exporter")


def find_blackbox() -> str | None:
    """Path of the blackbox exporter binary, or None when it is not installed."""
    for name in BINARY_NAMES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    return None


def tls_module(ca_file: Path, server_name: str, timeout_seconds: float = 5.0) -> dict[str, Any]:
    """A `tcp` prober module that does a TLS handshake validated against ca_file for server_name."""
    return {
        "prober": "tcp",
        "timeout": f"{timeout_seconds:g}s",
        "tcp": {"tls": True, "tls_config": {"ca_file": str(ca_file), "server_name": server_name}},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Blackbox:
    """A running blackbox exporter; probe() returns the metrics of one probe as {name: [(labels, value)]}."""

    def __init__(self, modules: Mapping[str, dict[str, Any]], folder: Path, binary: str | None = None) -> None:
        self.binary = binary or find_blackbox()
        if self.binary is None:
            raise FileNotFoundError("prometheus-blackbox-exporter is not installed")
        self.config = folder / "blackbox.yml"
        self.config.write_text(yaml.safe_dump({"modules": dict(modules)}), encoding="utf-8")
        self.log = folder / "blackbox.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the exporter."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_seconds: float = 20.0) -> Blackbox:
        """Start the exporter and wait until it answers (retrying when its port was taken meanwhile)."""
        assert self.binary is not None
        for _ in range(5):
            self.port = _free_port()
            with open(self.log, "wb") as log:
                self._process = subprocess.Popen(
                    [self.binary, f"--config.file={self.config}", f"--web.listen-address=127.0.0.1:{self.port}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(wait_seconds):
                return self
            self.stop()
        raise RuntimeError(f"blackbox exporter did not start; see {self.log}")

    def _wait_ready(self, wait_seconds: float) -> bool:
        assert self._process is not None
        until = time.monotonic() + wait_seconds
        while time.monotonic() < until:
            try:
                with urllib.request.urlopen(f"{self.url}/metrics", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return True
            except OSError:
                pass
            try:
                # Wait on the process itself: it either binds its port or exits.
                self._process.wait(timeout=0.05)
                return False
            except subprocess.TimeoutExpired:
                continue
        return False

    def probe(self, module: str, target: str) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Run one probe and return its metrics."""
        query = urllib.parse.urlencode({"module": module, "target": target})
        with urllib.request.urlopen(f"{self.url}/probe?{query}", timeout=30) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return out

    def stop(self) -> None:
        """Stop the exporter."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Blackbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
