"""A Service Fabric HTTP gateway on loopback: HTTPS with client-certificate authorization, for demo and tests.

It serves the calls certmon makes (GetClusterConfiguration, GetClusterVersion, the configuration
upgrade status and progress, cluster and node health, /Applications) and the two admin calls
(StartClusterConfigurationUpgrade, UpdateUpgrade), from a `SimulatedCluster`. A client is
authorized as Service Fabric does, by the running configuration: a listed thumbprint, or a common
name with a pinned issuer; admin calls need an admin client (403 otherwise). A client certificate
from an unknown CA fails the handshake; no certificate, or one the configuration does not list,
gets 403. The server presents the certificate the running configuration names (the new one once
a rotation's upgrade completed). Fault knobs: `fail_status` (with `fail_paths`), `latency`, `garbage`
(200 answers that are not JSON).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509

from simulator.lab import Lab
from simulator.labconfigs import cluster_config_document
from simulator.pki import Issued, pfx_bytes
from simulator.secretfile import write_secret
from simulator.sfcluster import FabricFailure, SimulatedCluster, thumbprint
from simulator.sfhealth import cluster_health, node_health
from simulator.tls import server_context

log = logging.getLogger("certmon.simulator")

ADMIN_PATHS = ("/$/StartClusterConfigurationUpgrade", "/$/UpdateUpgrade")
MONITOR_CERT = "SFMonitorClient"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sf gateway simulator: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _client(self) -> x509.Certificate | None:
        der = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) else None
        return x509.load_der_x509_certificate(der) if der else None

    def _serve(self, method: str) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        client = self._client()
        owner.requests.append((method, path, thumbprint(client) if client is not None else ""))
        if owner.latency:
            time.sleep(owner.latency)
        if owner.garbage:
            self._reply(200, b"\x00<html>\xff\xfe not JSON at all")
            return
        if owner.body_override is not None:
            self._reply(200, owner.body_override)
            return
        try:
            if owner.fail_status and (not owner.fail_paths or path in owner.fail_paths):
                raise FabricFailure(owner.fail_status, "FABRIC_E_SERVICE_OFFLINE", "the service is unavailable")
            role = owner.cluster.client_role(client)
            if not role:
                raise FabricFailure(403, "E_ACCESSDENIED", "the client certificate is not authorized on this cluster")
            if "api-version" not in query:
                raise FabricFailure(400, "E_INVALIDARG", "the api-version query parameter is required")
            status, body = owner.answer(method, path, query, raw, role)
        except FabricFailure as failure:
            status, body = failure.status, failure.body()
        self._reply(status, b"" if body is None else json.dumps(body).encode())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: ServiceFabricGateway) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The handshake runs on the request thread with the certificate the running configuration names."""
        request.settimeout(10)
        # Headers and body go out as separate writes: without this, delayed ACKs cost 40 ms per answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            request = self.owner.context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.debug("sf gateway simulator: handshake failed: %s", err)
            self.owner.handshake_failures += 1
            return
        self.owner.connections += 1
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-exchange (a killed test process, a probe's deadline) is not a traceback."""
        err = sys.exc_info()[1]
        if isinstance(err, OSError | ValueError):  # ValueError: ssl's "handshake not done yet"
            log.debug("sf gateway simulator: connection from %s ended: %s", client_address, err)
            return
        super().handle_error(request, client_address)


class ServiceFabricGateway:
    """The simulated gateway of one cluster; a context manager."""

    def __init__(
        self,
        cluster: SimulatedCluster,
        server_certs: Sequence[Issued],
        chain: Sequence[Issued],
        client_cas: Sequence[Issued],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        fail_status: int | None = None,
        fail_paths: Sequence[str] = (),
        latency: float = 0.0,
    ) -> None:
        self.cluster = cluster
        self.fail_status = fail_status
        self.fail_paths = set(fail_paths)
        self.latency = latency
        #: answer every request 200 with a body that is not JSON
        self.garbage = False
        #: answer every request 200 with exactly these bytes (hostile answers: huge, or a flood of values)
        self.body_override: bytes | None = None
        self.requests: list[tuple[str, str, str]] = []
        self.handshake_failures = 0
        #: TLS connections accepted (a client that keeps its connection alive makes one per collection)
        self.connections = 0
        self._contexts: dict[str, ssl.SSLContext] = {}
        for issued in server_certs:
            context = server_context(issued, chain, max_version=max_tls)
            # Ask for a client certificate without requiring one: authorization happens per request.
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata="".join(ca.pem.decode() for ca in client_cas))
            self._contexts[issued.thumbprint] = context
        self._default = self._contexts[server_certs[0].thumbprint]
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    def context(self) -> ssl.SSLContext:
        """The TLS context presenting the server certificate the running configuration names."""
        return self._contexts.get(self.cluster.server_thumbprint(), self._default)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._server.server_address[0])

    def answer(self, method: str, path: str, query: dict[str, list[str]], raw: bytes, role: str) -> tuple[int, Any]:
        """(status, JSON body) of one authorized request."""
        cluster = self.cluster
        if path in ADMIN_PATHS:
            if method != "POST":
                raise FabricFailure(405, "E_INVALIDARG", f"{path} needs POST")
            if role != "admin":
                raise FabricFailure(403, "E_ACCESSDENIED", "this operation needs an admin client certificate")
            try:
                body = json.loads(raw.decode("utf-8-sig") or "null")
            except ValueError as err:
                raise FabricFailure(400, "E_INVALIDARG", f"the request body is not JSON: {err}") from err
            if path == ADMIN_PATHS[0]:
                cluster.start_upgrade(body)
                return 202, None
            cluster.update_upgrade(body)
            return 200, None
        if method != "GET":
            raise FabricFailure(405, "E_INVALIDARG", f"{path} needs GET")
        if path == "/$/GetClusterConfiguration":
            if "ConfigurationApiVersion" not in query:
                raise FabricFailure(400, "E_INVALIDARG", "ConfigurationApiVersion is required")
            return 200, {"ClusterConfiguration": cluster.running_text()}
        simple = {
            "/$/GetClusterVersion": lambda: {"Version": cluster.code_version},
            "/$/GetClusterConfigurationUpgradeStatus": cluster.status,
            "/$/GetUpgradeProgress": cluster.progress,
            "/$/GetClusterHealth": lambda: cluster_health(cluster),
            "/Applications": lambda: cluster.application_page(query.get("ContinuationToken", [""])[0]),
        }
        if path in simple:
            return 200, simple[path]()
        if path.startswith("/Nodes/") and path.endswith("/$/GetHealth"):
            health = node_health(cluster, path[len("/Nodes/") : -len("/$/GetHealth")])
            if health is None:
                raise FabricFailure(404, "FABRIC_E_NODE_NOT_FOUND", "node not found")
            return 200, health
        raise FabricFailure(404, "E_INVALIDARG", f"unknown path {path}")

    @property
    def url(self) -> str:
        """https://127.0.0.1:port."""
        return f"https://{self.host}:{self.port}"

    def start(self) -> ServiceFabricGateway:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-sf-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ServiceFabricGateway:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


# -- the lab's cluster ----------------------------------------------------------------------------


def lab_applications(lab: Lab, generation: str = "old") -> list[dict[str, Any]]:
    """AXSF and LocalAgent as the lab runs them: still on the previous certificates until LCS settings apply."""

    def tp(role: str) -> str:
        return lab.cert(role, generation).thumbprint

    def app(name: str, type_name: str, version: str, parameters: dict[str, str]) -> dict[str, Any]:
        return {
            "Id": name.removeprefix("fabric:/").replace("/", "~"),
            "Name": name,
            "TypeName": type_name,
            "TypeVersion": version,
            "Status": "Ready",
            "Parameters": [{"Key": k, "Value": v} for k, v in parameters.items()],
            "HealthState": "Ok",
            "ApplicationDefinitionKind": "ServiceFabricApplicationDescription",
        }

    return [
        app(
            "fabric:/AXSF",
            "AXSFType",
            "10.0.42",
            {
                "AXSF_InstanceCount": "3",
                "DataAccess_DataEncryptionCertificateThumbprint": tp("DataEncryption"),
                "DataAccess_DataSigningCertificateThumbprint": tp("DataSigning"),
                "Infrastructure_SessionAuthenticationCertificateThumbprint": tp("SessionAuthentication"),
            },
        ),
        app("fabric:/FinancialReporting", "FinancialReportingType", "10.0.42", {"InstanceCount": "1"}),
        app(
            "fabric:/LocalAgent",
            "LocalAgentType",
            "3.2.0",
            {
                "AAD_ServicePrincipalThumbprint": tp("Orchestrator"),
                "ServiceFabric_ClientCertificate": tp("ServiceFabricClient"),
                "ServiceFabric_ServerCertificate": tp("ServiceFabric"),
            },
        ),
    ]


def running_config_text(lab: Lab) -> str:
    """What the lab's cluster runs: the configuration before the rotation was staged."""
    return json.dumps(cluster_config_document(dataclasses.replace(lab, stage="before")), indent=4)


def lab_cluster(lab: Lab, **knobs: Any) -> SimulatedCluster:
    """The lab's cluster: pre-rotation configuration, the lab's certificates for health, AXSF and LocalAgent."""
    certificates = {c.thumbprint: c.issued.cert for c in lab.certs.values()}
    knobs.setdefault("wall", lambda: lab.now)
    return SimulatedCluster(
        config_text=running_config_text(lab),
        applications=lab_applications(lab),
        certificates=certificates,
        issuers=(lab.ca.cert,),
        **knobs,
    )


def lab_gateway(lab: Lab, cluster: SimulatedCluster | None = None, **options: Any) -> ServiceFabricGateway:
    """A gateway for the lab's cluster, presenting the old or new Service Fabric certificate as configured."""
    return ServiceFabricGateway(
        cluster or lab_cluster(lab),
        [lab.cert("ServiceFabric", "old").issued, lab.cert("ServiceFabric", "new").issued],
        (lab.ca,),
        (lab.ca,),
        **options,
    )


def write_client_files(lab: Lab) -> dict[str, Path]:
    """PFX files of the read-only monitoring client and of the old and new admin clients, under lab/sf."""
    folder = lab.root / "sf"
    folder.mkdir(exist_ok=True)
    password = lab.password.encode()
    files = {
        "monitor": (lab.service_certs[MONITOR_CERT], folder / "certmon-monitor.pfx"),
        "admin-old": (lab.cert("ServiceFabricClient", "old").issued, folder / "admin-old.pfx"),
        "admin-new": (lab.cert("ServiceFabricClient", "new").issued, folder / "admin-new.pfx"),
    }
    for issued, path in files.values():
        write_secret(path, pfx_bytes(issued, password, legacy=False))
    return {name: path for name, (_issued, path) in files.items()}


def gateway_section(lab: Lab, gateway: ServiceFabricGateway, files: dict[str, Path]) -> dict[str, Any]:
    """The `servicefabric` source section for the lab's simulated gateway (server verified by the lab CA)."""

    def rel(path: Path) -> str:
        return str(path.relative_to(lab.root))

    password = rel(lab.password_file)
    return {
        "name": "D365FOCluster",
        "gateways": [f"https://sf.d365ffo.onprem.contoso.lab:{gateway.port}"],
        "resolve": {"sf.d365ffo.onprem.contoso.lab": gateway.host},
        "ca_bundle": rel(lab.ca_bundle),
        "client_certificate": {"path": rel(files["monitor"]), "password_file": password},
        "admin_certificates": [
            {"path": rel(files["admin-old"]), "password_file": password},
            {"path": rel(files["admin-new"]), "password_file": password},
        ],
        "interval_seconds": 30,
        "timeout_seconds": 20,
    }
