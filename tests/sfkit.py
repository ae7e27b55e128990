"""Helpers for the Service Fabric tests: the lab's simulated gateway on a manual clock, and settings pointing at it."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from collectors.servicefabric.client import GatewayUrl, ServerTrust
from collectors.servicefabric.connector import GatewayConfig
from collectors.servicefabric.identity import CertificateFile
from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import Settings, load_settings
from remediations.base import RemediationContext
from remediations.engine import Engine
from remediations.sfgateway import OPTION, gateway_access
from simulator.lab import Lab
from simulator.servicefabric import (
    ServiceFabricGateway,
    gateway_section,
    lab_cluster,
    lab_gateway,
    running_config_text,
    write_client_files,
)
from simulator.sfcluster import ManualClock, SimulatedCluster

HOST = "sf.d365ffo.onprem.contoso.lab"
STEP = 10.0


@dataclass
class SfLab:
    """A lab copy with its simulated cluster and gateway running, and the client certificate files."""

    lab: Lab
    cluster: SimulatedCluster
    gateway: ServiceFabricGateway
    clock: ManualClock
    files: dict[str, Path]

    @property
    def url(self) -> str:
        """The gateway URL by the cluster's DNS name."""
        return f"https://{HOST}:{self.gateway.port}"

    def config(self, **overrides: Any) -> GatewayConfig:
        """A GatewayConfig for the collector: monitoring client, lab CA, both admin clients."""
        password = self.lab.password.encode()
        values: dict[str, Any] = {
            "name": "D365FOCluster",
            "gateways": (GatewayUrl.parse(self.url, {HOST: self.gateway.host}),),
            "trust": ServerTrust(ca_bundle=self.lab.ca_bundle),
            "client_certificate": CertificateFile(self.files["monitor"], password=password),
            "admin_certificates": (
                CertificateFile(self.files["admin-old"], password=password),
                CertificateFile(self.files["admin-new"], password=password),
            ),
        }
        values.update(overrides)
        return GatewayConfig(**values)

    def write_settings(self, **section: Any) -> Path:
        """certmon.yaml with the servicefabric section (overridden by `section`) and a one-node inventory."""
        path = self.lab.config_file
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        sf = gateway_section(self.lab, self.gateway, self.files)
        sf["follow_upgrade_seconds"] = 0
        sf.update(section)
        config["sources"]["servicefabric"] = sf
        config["sources"]["certfolder"]["nodes"] = ["ORCH1"]
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def settings(self, **section: Any) -> Settings:
        """Settings loaded from the rewritten certmon.yaml."""
        return load_settings(self.write_settings(**section))

    def daemon(self, settings: Settings, now: datetime) -> Daemon:
        """A daemon at the lab's moment (chain validation included), collected once."""
        instance = Daemon(settings, clock=lambda: now)
        collector = instance.collectors.get("servicefabric")
        if collector is not None:
            collector.connector.clock = lambda: now  # type: ignore[attr-defined]
        instance.collect_once()
        return instance

    def finish_upgrade(self) -> None:
        """Move the simulated clock past every upgrade domain."""
        self.clock.advance(STEP * 10)

    def finish_reencryption(self) -> None:
        """Every lab encrypted field re-encrypted to the new DataEncryption certificate (the batch job's end)."""
        old = self.lab.cert("DataEncryption", "old").thumbprint
        new = self.lab.cert("DataEncryption", "new").thumbprint
        with contextlib.closing(sqlite3.connect(self.lab.axdb_file)) as connection, connection:
            connection.execute("UPDATE LABENCRYPTEDFIELD SET CERTTHUMBPRINT = ? WHERE CERTTHUMBPRINT = ?", (new, old))

    def unstage_file(self) -> None:
        """Make ClusterConfig.json the running (pre-rotation) configuration, with Windows line endings."""
        self.lab.cluster_config.write_bytes(running_config_text(self.lab).replace("\n", "\r\n").encode())


@contextmanager
def sf_lab(lab: Lab, **knobs: Any) -> Iterator[SfLab]:
    """Start the lab's gateway on a manual clock; `knobs` go to the cluster (code_version, stuck...)."""
    clock = ManualClock()
    options = {k: knobs.pop(k) for k in ("max_tls", "fail_status", "fail_paths", "latency") if k in knobs}
    cluster = lab_cluster(lab, clock=clock, step_seconds=STEP, **knobs)
    files = write_client_files(lab)
    with lab_gateway(lab, cluster, **options) as gateway:
        yield SfLab(lab, cluster, gateway, clock, files)


def with_stage(lab: Lab, stage: str) -> Lab:
    """The same lab seen at another stage (for documents only)."""
    return dataclasses.replace(lab, stage=stage)


@dataclass
class Remediating:
    """A daemon collected at the lab's moment, its remediation context (with progress captured) and engine."""

    daemon: Daemon
    ctx: RemediationContext
    engine: Engine
    progress: list[str]

    def close(self) -> None:
        """Stop the daemon."""
        self.daemon.stop()


def remediating(sf: SfLab, now: datetime, settings: Settings | None = None, follow: float = 0.0) -> Remediating:
    """Collect once and build the context the CLI would; `follow` seconds of upgrade following on the manual clock."""
    daemon = sf.daemon(settings or sf.settings(), now)
    progress: list[str] = []
    ctx = remediation_context(daemon, progress=progress.append)
    access = gateway_access(ctx)
    if access is not None:
        options = {**ctx.options, OPTION: dataclasses.replace(access, sleep=sf.clock.advance, follow_seconds=follow)}
        ctx = dataclasses.replace(ctx, options=options)
    return Remediating(daemon, ctx, remediation_engine(daemon, lock_timeout=0.2, actor="tester"), progress)
