"""Endpoint rules: different certificates behind one name, chains clients reject, one failing node."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from collectors.model import Finding
from collectors.tls.collector import Endpoint, TlsCollector
from daemon.app import Daemon
from daemon.settings import Settings
from simulator.lab import Lab
from simulator.pki import Issued
from simulator.tls import TlsEndpointServer

HOST = "ax.d365ffo.onprem.contoso.lab"


def _second_loopback() -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


needs_two = pytest.mark.skipif(not _second_loopback(), reason="127.0.0.2 cannot be bound here")


@pytest.fixture
def serve(lab: Lab) -> Iterator[list[TlsEndpointServer]]:
    servers: list[TlsEndpointServer] = []
    yield servers
    for server in servers:
        server.stop()


def _findings(lab: Lab, now: datetime, tmp_path: Path, endpoint: Endpoint) -> list[Finding]:
    collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now, timeout=5)
    daemon = Daemon(Settings(data_dir=tmp_path / "data", environment="lab"), collectors=[collector], clock=lambda: now)
    try:
        return list(daemon.collect_once().evaluation.findings)
    finally:
        daemon.stop()


def _start(serve: list[TlsEndpointServer], issued: Issued, lab: Lab, host: str, port: int = 0) -> TlsEndpointServer:
    server = TlsEndpointServer(issued, (lab.ca,), host=host, port=port).start()
    serve.append(server)
    return server


@needs_two
def test_different_certificates_behind_one_name(lab: Lab, now: datetime, tmp_path: Path, serve: list) -> None:  # type: ignore[type-arg]
    new, old = lab.cert("ServiceFabric", "new").issued, lab.cert("ServiceFabric", "old").issued
    first = _start(serve, new, lab, "127.0.0.1")
    _start(serve, old, lab, "127.0.0.2", first.port)
    endpoint = Endpoint("aos", HOST, first.port, addresses=("127.0.0.1", "127.0.0.2"))
    rules = [f for f in _findings(lab, now, tmp_path, endpoint) if f.rule == "cert-inconsistent-across-nodes"]
    assert len(rules) == 1 and new.thumbprint in rules[0].message and old.thumbprint in rules[0].message


@needs_two
def test_the_same_certificate_everywhere_is_consistent(lab: Lab, now: datetime, tmp_path: Path, serve: list) -> None:  # type: ignore[type-arg]
    new = lab.cert("ServiceFabric", "new").issued
    first = _start(serve, new, lab, "127.0.0.1")
    _start(serve, new, lab, "127.0.0.2", first.port)
    endpoint = Endpoint("aos", HOST, first.port, addresses=("127.0.0.1", "127.0.0.2"))
    rules = {f.rule for f in _findings(lab, now, tmp_path, endpoint)}
    assert not rules & {"cert-inconsistent-across-nodes", "tls-probe-failed", "tls-chain-invalid"}


def test_a_chain_clients_reject(lab: Lab, now: datetime, tmp_path: Path, serve: list) -> None:  # type: ignore[type-arg]
    server = _start(serve, lab.cert("ServiceFabric", "new").issued, lab, "127.0.0.1")
    wrong_name = Endpoint("aos", "sql1.somewhere.else", server.port, addresses=("127.0.0.1",))
    (finding,) = [f for f in _findings(lab, now, tmp_path, wrong_name) if f.rule == "tls-chain-invalid"]
    assert "hostname_mismatch" in finding.message and finding.node == "127.0.0.1"
    right_name = Endpoint("aos", HOST, server.port, addresses=("127.0.0.1",))
    assert not [f for f in _findings(lab, now, tmp_path / "2", right_name) if f.rule == "tls-chain-invalid"]


@needs_two
def test_one_node_failing_behind_a_name(lab: Lab, now: datetime, tmp_path: Path, serve: list) -> None:  # type: ignore[type-arg]
    first = _start(serve, lab.cert("ServiceFabric", "new").issued, lab, "127.0.0.1")
    endpoint = Endpoint("aos", HOST, first.port, addresses=("127.0.0.1", "127.0.0.2"))
    (failed,) = [f for f in _findings(lab, now, tmp_path, endpoint) if f.rule == "tls-probe-failed"]
    assert failed.node == "127.0.0.2" and "connection_refused" in failed.message
