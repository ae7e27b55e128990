"""One rig per source: a real daemon serving /metrics, its peer behind a fault proxy, and the fault classes.

Each rig knows how to inject and clear every fault class that applies to its source, with the
reason certmon must report; `rigbase.NOT_APPLICABLE` says why the other classes do not apply.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from collectors.errors import Reason
from simulator.adfs import KEYS_PATH, METADATA_PATH, AdfsServer
from simulator.lab import ADFS_HOST, DOMAIN, Lab
from simulator.postgres import USERS_GROUP, PgEnvironment, PostgresServer
from simulator.servicefabric import gateway_section, lab_cluster, lab_gateway, write_client_files
from simulator.tls import TlsEndpointServer
from simulator.winrm import SimulatedFleet
from tests.axdbkit import seed_reencryption_enabled
from tests.reliability.rigbase import (
    FAULTS,
    NOT_APPLICABLE,
    SOURCES,
    TIMEOUT,
    Fault,
    Rig,
    SourceState,
    collecting,
    first_target,
    network_faults,
    proxied,
)

__all__ = [
    "FAULTS",
    "NOT_APPLICABLE",
    "SOURCES",
    "TIMEOUT",
    "AdfsRig",
    "Fault",
    "FilesRig",
    "Rig",
    "ServiceFabricRig",
    "SourceState",
    "SqlRig",
    "TlsRig",
    "WinRMRig",
    "collecting",
    "first_target",
]


class WinRMRig(Rig):
    """AOS1, a simulated Windows node, over NTLM with message encryption."""

    source = "winrm"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        super().__init__(lab, stack)
        fleet = stack.enter_context(SimulatedFleet.from_lab(lab))
        node = fleet["AOS1"]
        proxy = proxied(stack, node.host, node.port)
        self.start_daemon(
            {
                "nodes": ["AOS1"],
                "addresses": {"AOS1": proxy.address},
                "username": lab.winrm_username,
                "password_file": str(lab.winrm_password_file),
                "stores": ["LocalMachine\\My"],
                "timeout_seconds": TIMEOUT,
                "operation_timeout_seconds": 0.5,
            }
        )

        def knob(**changes: Any) -> Callable[[], None]:
            return lambda: node.configure(**changes)

        self.faults = network_faults(
            proxy,
            authentication=Fault(
                "node rejects the password (401)",
                Reason.AUTH_FAILED,
                knob(wrong_password=True),
                knob(wrong_password=False),
            ),
            **{
                "5xx/soap fault": Fault(
                    "WS-Management SOAP fault: access denied",
                    Reason.PROTOCOL_ERROR,
                    knob(soap_fault="Access is denied."),
                    knob(soap_fault=None),
                ),
            },
            garbage=Fault(
                "inventory script prints garbage", Reason.BAD_OUTPUT, knob(stdout="garbage"), knob(stdout="ok")
            ),
            # NTLM over HTTP: message encryption is the transport security (https-basic's TLS failures:
            # tests/collectors/winrm/test_winrm_https.py).
            tls=Fault(
                "answers stripped of message encryption (a downgrade in the path)",
                Reason.PROTOCOL_ERROR,
                knob(plaintext_answers=True),
                knob(plaintext_answers=False),
                "without message encryption",
            ),
        )


class ServiceFabricRig(Rig):
    """The lab cluster's simulated HTTPS gateway, client-certificate authenticated."""

    source = "servicefabric"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        super().__init__(lab, stack)
        gateway = stack.enter_context(lab_gateway(lab, lab_cluster(lab)))
        proxy = proxied(stack, gateway.host, gateway.port)
        section = gateway_section(lab, gateway, write_client_files(lab))
        section["gateways"] = [f"https://sf.d365ffo.onprem.{DOMAIN}:{proxy.port}"]
        section["timeout_seconds"] = TIMEOUT
        section["follow_upgrade_seconds"] = 0
        self.start_daemon(section)
        impostor = stack.enter_context(
            TlsEndpointServer(lab.service_certs["tls-untrusted"], (lab.service_certs["rogue-ca"],), name="impostor")
        )

        def status(code: int | None) -> Callable[[], None]:
            def change() -> None:
                gateway.fail_status = code

            return change

        def garbage(on: bool) -> Callable[[], None]:
            def change() -> None:
                gateway.garbage = on

            return change

        self.faults = network_faults(
            proxy,
            authentication=Fault(
                "gateway answers 403 to the client certificate", Reason.AUTH_FAILED, status(403), status(None)
            ),
            tls=Fault(
                "an impostor presents an untrusted certificate",
                Reason.TLS_ERROR,
                lambda: proxy.set("redirect", redirect_to=(impostor.host, impostor.port)),
                lambda: proxy.set("pass"),
            ),
            **{"5xx/soap fault": Fault("gateway answers 503", Reason.HTTP_ERROR, status(503), status(None))},
        )
        self.faults["garbage"] = Fault(
            "200 with a body that is not JSON", Reason.BAD_OUTPUT, garbage(True), garbage(False), "not JSON"
        )


class SqlRig(Rig):
    """AXDB on the private PostgreSQL server, through psqlODBC, behind the proxy."""

    source = "sql"
    data_metric = "certmon_reencryption_flight_enabled"

    def __init__(self, lab: Lab, stack: ExitStack, server: PostgresServer) -> None:
        super().__init__(lab, stack)
        pg = PgEnvironment(server, "faults" + uuid.uuid4().hex[:8])
        seed_reencryption_enabled(pg)
        proxy = proxied(stack, "127.0.0.1", server.port)
        connection_string = re.sub(r"Port=\d+", f"Port={proxy.port}", pg.connection_string(pg.axdb))
        self.start_daemon(
            {"axdb": {"connection_string": connection_string, "login_timeout_seconds": 5}, "timeout_seconds": TIMEOUT},
            env={"CERTMON_SOURCES__SQL__AXDB__PASSWORD": pg.password},
        )

        def password(text: str) -> Callable[[], None]:
            def change() -> None:
                server.execute("postgres", f"ALTER ROLE {pg.user} PASSWORD '{text}'")
                proxy.drop()  # pooled sessions logged on before the change; the next cycle logs on anew

            return change

        def grants(statement: str) -> Callable[[], None]:
            def change() -> None:
                server.execute(
                    pg.axdb,
                    f"{statement} SELECT ON ALL TABLES IN SCHEMA public {'FROM' if statement == 'REVOKE' else 'TO'} {USERS_GROUP}",
                )

            return change

        self.faults = network_faults(
            proxy,
            authentication=Fault(
                "login's password changed on the server",
                Reason.AUTH_FAILED,
                password("Changed-" + uuid.uuid4().hex),
                password(pg.password),
            ),
            **{
                "5xx/soap fault": Fault(
                    "server answers an error (SELECT revoked)",
                    Reason.PERMISSION_DENIED,
                    grants("REVOKE"),
                    grants("GRANT"),
                )
            },
        )


class AdfsRig(Rig):
    """AD FS federation metadata and keys over HTTPS."""

    source = "adfs"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        super().__init__(lab, stack)
        certs = lab.service_certs
        server = stack.enter_context(
            AdfsServer(
                certs["ADFSSSL"],
                (lab.ca,),
                [certs["ADFSTokenSigning-old"], certs["ADFSTokenSigning-new"]],
                [certs["ADFSTokenDecrypting-old"], certs["ADFSTokenDecrypting-new"]],
                host_name=ADFS_HOST,
            )
        )
        proxy = proxied(stack, "127.0.0.1", server.port)
        url = f"https://{ADFS_HOST}:{proxy.port}"
        self.start_daemon(
            {
                "urls": [url],
                "resolve": {ADFS_HOST: "127.0.0.1"},
                "ca_bundle": str(lab.ca_bundle),
                "timeout_seconds": TIMEOUT,
            }
        )

        def failing(paths: dict[str, int]) -> Callable[[], None]:
            def change() -> None:
                server.failing = dict(paths)

            return change

        def documents(data: bytes | None) -> Callable[[], None]:
            def change() -> None:
                server.metadata_override = data
                server.keys_override = data

            return change

        self.faults = network_faults(
            proxy,
            tls=Fault(
                "handshake answered with a fatal alert",
                Reason.TLS_ERROR,
                lambda: proxy.set("tls-alert"),
                lambda: proxy.set("pass"),
            ),
            **{
                "5xx/soap fault": Fault(
                    "metadata and keys answer 503",
                    Reason.HTTP_ERROR,
                    failing({METADATA_PATH: 503, KEYS_PATH: 503}),
                    failing({}),
                )
            },
            garbage=Fault(
                "metadata and keys are garbage", Reason.PARSE_ERROR, documents(b"\x00garbage<"), documents(None)
            ),
        )


class TlsRig(Rig):
    """A TLS endpoint (the SSRS certificate) probed by the tls source."""

    source = "tls"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        super().__init__(lab, stack)
        server = stack.enter_context(TlsEndpointServer(lab.current("SSRSHTTPS").issued, (lab.ca,), name="ssrs"))
        proxy = proxied(stack, server.host, server.port)
        self.start_daemon(
            {
                "ca_bundle": str(lab.ca_bundle),
                "timeout_seconds": TIMEOUT,
                "endpoints": [
                    {"name": "ssrs", "host": f"bi1.{DOMAIN}", "port": proxy.port, "addresses": ["127.0.0.1"]}
                ],
            }
        )
        self.faults = network_faults(
            proxy,
            tls=Fault(
                "handshake answered with a fatal alert",
                Reason.TLS_ERROR,
                lambda: proxy.set("tls-alert"),
                lambda: proxy.set("pass"),
                "handshake failure",
            ),
            # For a TLS probe the handshake is the protocol: bytes that are not TLS are a TLS error.
            garbage=Fault(
                "wire garbage", Reason.TLS_ERROR, lambda: proxy.set("garbage"), lambda: proxy.set("pass"), "speak TLS"
            ),
        )


class FilesRig(Rig):
    """ClusterConfig.json read from disk (a share in production)."""

    source = "clusterconfig"
    data_metric = "certmon_expected_cert_info"

    def __init__(self, lab: Lab, stack: ExitStack) -> None:
        super().__init__(lab, stack)
        path = lab.cluster_config
        good = path.read_bytes()
        self.start_daemon({"path": str(path), "timeout_seconds": TIMEOUT})

        def restore() -> None:
            path.unlink(missing_ok=True)
            path.write_bytes(good)

        def fifo() -> None:
            path.unlink()
            os.mkfifo(path)

        def release() -> None:
            # A writer lets the blocked open() return (at end of file), then the file comes back.
            with contextlib.suppress(OSError):  # no reader left
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            restore()

        self.faults = {
            "refused": Fault("the file is gone (share not mounted)", Reason.NOT_FOUND, path.unlink, restore),
            "garbage": Fault(
                "the file is garbage", Reason.PARSE_ERROR, lambda: path.write_bytes(b"\xff\xfe{garbage"), restore
            ),
            "hang": Fault("open() blocks (a FIFO stands in for a stalled share)", Reason.TIMEOUT, fifo, release),
        }
