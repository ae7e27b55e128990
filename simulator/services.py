"""The lab's network services: AD FS, TLS endpoints, SQL Server's TDS listener and the Service Fabric
gateway, on loopback free ports.

`LabServices(lab)` starts them all (a context manager) and writes the `adfs`, `tls` and
`servicefabric` sections pointing at them into the lab's certmon.yaml; `certmon demo` and the
end-to-end tests use it. `sf_upgrade_seconds` is how long the simulated cluster spends on each
upgrade domain of a configuration upgrade, on `clock` (the demo's simulated time). The endpoints
present the certificates the lab's rotation stage binds (`rebind()` after the stage moved).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from types import TracebackType
from typing import Any

from simulator.adfs import AdfsServer
from simulator.lab import ADFS_HOST, DOMAIN, Lab, edit_config
from simulator.pki import Issued
from simulator.servicefabric import ServiceFabricGateway, gateway_section, lab_cluster, lab_gateway, write_client_files
from simulator.tds import TdsServer
from simulator.tls import TlsEndpointServer, same_port_on

LOOPBACKS = ("127.0.0.1", "127.0.0.2")


def usable_loopbacks(candidates: Sequence[str] = LOOPBACKS) -> tuple[str, ...]:
    """The loopback addresses this machine can bind (127.0.0.2 needs an alias on macOS)."""
    usable = []
    for host in candidates:
        try:
            with socket.socket() as sock:
                sock.bind((host, 0))
        except OSError:
            continue
        usable.append(host)
    return tuple(usable) or ("127.0.0.1",)


class LabServices:
    """Every simulated network peer of the lab, started together."""

    def __init__(
        self,
        lab: Lab,
        hosts: Sequence[str] | None = None,
        sf_upgrade_seconds: float = 20.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.lab = lab
        self.hosts = tuple(hosts) if hosts is not None else usable_loopbacks()
        self._stack = ExitStack()
        self.endpoints: list[dict[str, Any]] = []
        self.adfs: AdfsServer | None = None
        self.tds: TdsServer | None = None
        self.sf_upgrade_seconds = sf_upgrade_seconds
        self.clock = clock
        self.sf_gateway: ServiceFabricGateway | None = None
        self._sf_files: dict[str, Any] = {}
        #: the TLS endpoints by name, one server per address
        self.servers: dict[str, list[TlsEndpointServer]] = {}

    def bindings(self) -> dict[str, list[Issued]]:
        """The certificate each address of each rotated endpoint presents at the lab's stage."""
        lab = self.lab
        star = {g: lab.cert("ServiceFabric", g).issued for g in ("old", "new")}
        if lab.stage == "before":
            gateway = [star["old"], star["old"]]
        elif lab.stage == "staged":
            # Mid-rotation, one gateway node already presents the new cluster certificate.
            gateway = [star["new"], star["old"]]
        else:
            gateway = [star["new"], star["new"]]
        current = lab.current("ServiceFabric").issued
        return {
            "aos": [current, current],
            "sf-gateway": gateway,
            "ssrs": [lab.current("SSRSHTTPS").issued],
            "sql": [lab.current("SQLCluster").issued],
        }

    def rebind(self) -> None:
        """Present the certificates of the lab's current stage (the services were rebound to new ones)."""
        chain = (self.lab.ca,)
        for name, certs in self.bindings().items():
            if name == "sql":
                if self.tds is not None:
                    self.tds.present(certs[0], chain)
                continue
            for server, cert in zip(self.servers.get(name, ()), certs, strict=False):
                if server.issued is not cert:
                    server.present(cert, chain)

    def _serve(self, issued: Issued, chain: Sequence[Issued], name: str, host: str, role: str = "") -> None:
        server = self._stack.enter_context(TlsEndpointServer(issued, chain, host=self.hosts[0], name=name))
        self.servers[name] = [server]
        self._add(name, host, server.port, [self.hosts[0]], role=role)

    def _add(self, name: str, host: str, port: int, addresses: list[str], **extra: Any) -> None:
        entry: dict[str, Any] = {"name": name, "host": host, "port": port, "addresses": addresses}
        entry.update({k: v for k, v in extra.items() if v})
        self.endpoints.append(entry)

    def _nodes(self, name: str, host: str, certs: Sequence[Issued], role: str) -> None:
        """One name served by every loopback address on one port, as nodes behind a load balancer."""
        hosts = self.hosts[: len(certs)]
        chain = (self.lab.ca,)

        def make(address: str, port: int) -> TlsEndpointServer:
            cert = certs[hosts.index(address)]
            return TlsEndpointServer(cert, chain, host=address, port=port, name=name)

        servers = same_port_on(hosts, make)
        for server in servers:
            self._stack.callback(server.stop)
        self.servers[name] = servers
        self._add(name, host, servers[0].port, list(hosts), role=role)

    def start(self) -> LabServices:
        """Start every service."""
        lab, certs = self.lab, self.lab.service_certs
        bound = self.bindings()
        try:
            self._nodes("aos", f"ax.d365ffo.onprem.{DOMAIN}", bound["aos"], "ServiceFabric")
            self._nodes("sf-gateway", f"sf.d365ffo.onprem.{DOMAIN}", bound["sf-gateway"], "ServiceFabric")
            self._serve(bound["ssrs"][0], (lab.ca,), "ssrs", f"bi1.{DOMAIN}", "SSRSHTTPS")
            self._serve(certs["tls-expired"], (lab.ca,), "expired", f"expired.{DOMAIN}")
            self._serve(certs["tls-untrusted"], (certs["rogue-ca"],), "untrusted", f"untrusted.{DOMAIN}")
            self._serve(certs["tls-wrongname"], (lab.ca,), "wrong-name", f"wrongname.{DOMAIN}")
            self.tds = self._stack.enter_context(TdsServer(bound["sql"][0], (lab.ca,), host=self.hosts[0]))
            self._add("sql", f"sql1.{DOMAIN}", self.tds.port, [self.hosts[0]], kind="tds", role="SQLCluster")
            self._add("sql-strict", f"sql1.{DOMAIN}", self.tds.port, [self.hosts[0]], kind="tds8", role="SQLCluster")
            self.adfs = self._stack.enter_context(
                AdfsServer(
                    certs["ADFSSSL"],
                    (lab.ca,),
                    [certs["ADFSTokenSigning-old"], certs["ADFSTokenSigning-new"]],
                    [certs["ADFSTokenDecrypting-old"], certs["ADFSTokenDecrypting-new"]],
                    host_name=ADFS_HOST,
                    host=self.hosts[0],
                )
            )
            self._add("adfs", ADFS_HOST, self.adfs.port, [self.hosts[0]], role="ADFSSSL")
            clock = self.clock
            timing: dict[str, Any] = {"clock": lambda: clock().timestamp(), "wall": clock} if clock else {}
            cluster = lab_cluster(lab, step_seconds=self.sf_upgrade_seconds, **timing)
            self.sf_gateway = self._stack.enter_context(lab_gateway(lab, cluster, host=self.hosts[0]))
            self._sf_files = write_client_files(lab)
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        """Stop every service."""
        self._stack.close()

    def sources(self) -> dict[str, Any]:
        """The `adfs` and `tls` source sections pointing at the running services."""
        assert self.adfs is not None and self.sf_gateway is not None, "start() first"
        bundle = str(self.lab.ca_bundle.relative_to(self.lab.root))
        return {
            "servicefabric": gateway_section(self.lab, self.sf_gateway, self._sf_files),
            "adfs": {
                "urls": [self.adfs.url],
                "resolve": {ADFS_HOST: self.hosts[0]},
                "ca_bundle": bundle,
                "interval_seconds": 60,
            },
            "tls": {"ca_bundle": bundle, "interval_seconds": 30, "endpoints": self.endpoints},
        }

    def summary(self) -> str:
        """One line naming each endpoint and its port."""
        gateway = f", SF gateway :{self.sf_gateway.port}" if self.sf_gateway is not None else ""
        return ", ".join(f"{e['name']} :{e['port']}" for e in self.endpoints) + gateway

    def write_config(self) -> None:
        """Add the sections to the lab's certmon.yaml (the ports change with every start)."""
        sections = self.sources()
        edit_config(self.lab, lambda config: config.setdefault("sources", {}).update(sections))

    def __enter__(self) -> LabServices:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m simulator.services DIR`: build a lab in DIR, serve it, print the endpoints as JSON, stop on EOF."""
    import json
    import sys

    from simulator.lab import build_lab

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m simulator.services DIR", file=sys.stderr)
        return 2
    from pathlib import Path

    lab = build_lab(Path(args[0]), port=0)
    with LabServices(lab) as services:
        report = {
            "root": str(lab.root),
            "ca_bundle": str(lab.ca_bundle),
            "endpoints": services.endpoints,
            "servicefabric": services.sources()["servicefabric"],
        }
        print(json.dumps(report), flush=True)
        # Serve until the parent closes our stdin (portable: no signals needed).
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
