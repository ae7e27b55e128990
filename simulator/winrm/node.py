"""Simulated Windows nodes: a WinRM listener per node on loopback, all on one event-loop thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import tempfile
import threading
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from simulator.winrm.auth import (
    BOUNDARY,
    Account,
    AuthError,
    DecryptError,
    NtlmLogon,
    basic_account,
    parse_authorization,
    read_user_file,
    write_user_file,
)
from simulator.winrm.faults import Counters, Faults
from simulator.winrm.hostile import send_hostile
from simulator.winrm.http import Connection, Request, Response, serve_connection
from simulator.winrm.powershell import NodeFolder, PowerShellHost
from simulator.winrm.wsman import WsmanService

if TYPE_CHECKING:
    from simulator.labmodel import Lab
    from simulator.pki import Issued

T = TypeVar("T")
ENCRYPTED_TYPE = (
    'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
)
SOAP_TYPE = "application/soap+xml;charset=UTF-8"
_NTLM_NEGOTIATE = b"NTLMSSP\x00\x01\x00\x00\x00"


class SimulatedNode:
    """One node: its folder, accounts, shells, fault knobs and counters."""

    def __init__(
        self,
        fleet: SimulatedFleet,
        name: str,
        folder: Path,
        user_file: Path,
        *,
        pfx_password: bytes | None = None,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keytab: Path | None = None,
        certificate: bytes | None = None,
    ) -> None:
        self.fleet = fleet
        #: DER of the HTTPS listener's certificate, for channel binding of Negotiate logons over TLS
        self.certificate = certificate
        #: the node's Kerberos keys (HTTP/<host> principals); None: NTLM and Basic only
        self.keytab = keytab
        self.name = name
        self.host = host
        self.port = port
        self.tls = tls
        self.faults = Faults()
        self.counters = Counters()
        self._user_file = user_file
        # The same accounts with other passwords: the `wrong_password` knob logs on against this file.
        self._rotated_file = fleet.workdir / f"{name}-rotated-users.txt"
        write_user_file(
            self._rotated_file,
            [Account(a.domain, a.user, a.password + "-rotated") for a in read_user_file(user_file)],
        )
        self.wsman = WsmanService(name, PowerShellHost(NodeFolder(folder, pfx_password)), self.faults, self._action)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping: asyncio.Event | None = None

    @property
    def address(self) -> str:
        """host:port of the listener."""
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        """The WS-Management URL."""
        return f"{self.scheme}://{self.address}/wsman"

    def configure(self, **changes: Any) -> None:
        """Change fault knobs (see Faults); takes effect for the next request or connection."""
        self.faults.update(**changes)
        self.fleet.call(self._apply(reset_connections="wrong_password" in changes or "refuse" in changes))

    def drop_connections(self) -> None:
        """Close every client connection now, as HTTP.sys does with idle keep-alive connections."""
        self.fleet.call(self._drop())

    async def _drop(self) -> None:
        for writer in list(self._writers):
            writer.close()

    def restart_service(self) -> None:
        """Restart-Service WinRM: every shell and connection is gone."""
        self.fleet.call(self._restart())

    async def _restart(self) -> None:
        self.wsman.shells.clear()
        await self._apply(reset_connections=True)

    def _action(self, name: str) -> None:
        self.counters.action(name)

    # -- listener -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (port 0 picks a free port, kept across refuse/accept cycles)."""
        self._stopping = self._stopping or asyncio.Event()
        if self._server is not None or self.faults.refuse:
            return
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self.tls, reuse_address=True, limit=1024 * 1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _apply(self, reset_connections: bool) -> None:
        if reset_connections:
            self._close_connections()
        if self.faults.refuse and self._server is not None:
            self._server.close()
            self._server = None
        elif not self.faults.refuse:
            await self.start()

    def _close_connections(self) -> None:
        # Abort, as a restarting service does: no TLS close_notify exchange with idle clients.
        for writer in list(self._writers):
            writer.transport.abort()

    async def stop(self) -> None:
        """Stop listening and drop every connection; hung requests end too."""
        if self._stopping is not None:
            self._stopping.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._close_connections()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.add("connections")
        self._writers.add(writer)

        async def handle(connection: Connection, request: Request) -> Response | None:
            mode = self.faults.hostile_answer
            if mode and (not self.faults.hostile_after_logon or isinstance(connection.state.get("user"), str)):
                self.counters.add("requests")
                sent = [0]
                assert self._stopping is not None
                try:
                    await send_hostile(writer, mode, self.faults.trickle_interval, self._stopping, sent)
                finally:
                    self.counters.add("hostile_bytes", sent[0])
                return None
            return await self._handle(connection, request)

        try:
            await serve_connection(reader, writer, handle, lambda: self.faults.idle_connection_timeout)
        except asyncio.CancelledError:
            writer.transport.abort()  # the fleet is shutting down
        finally:
            self._writers.discard(writer)

    # -- one request ----------------------------------------------------------------------

    async def _handle(self, connection: Connection, request: Request) -> Response | None:
        self.counters.add("requests")
        stopping = self._stopping
        assert stopping is not None
        if self.faults.latency > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.faults.latency)
        if self.faults.hang or stopping.is_set():
            await stopping.wait()
            return None
        if request.path.split("?", 1)[0].lower() != "/wsman":
            return Response(404)
        if request.method != "POST":
            return Response(405)
        user = self._authenticate(connection, request)
        if isinstance(user, Response):
            return user
        if self.faults.unauthorized_after_logon > 0 and not request.headers.get("Authorization"):
            self.faults.unauthorized_after_logon -= 1
            connection.state.pop("user", None)
            connection.state.pop("logon", None)
            return self._challenge(connection)
        logon = connection.state.get("logon")
        encrypted = request.headers.get("Content-Type").lower().startswith("multipart/encrypted")
        if encrypted:
            if not isinstance(logon, NtlmLogon) or not logon.complete:
                return Response(400, b"encrypted message without a security context")
            try:
                envelope = logon.open(request.body)
            except DecryptError:
                return Response(400, b"the message could not be decrypted")
            self.counters.add("encrypted")
        else:
            envelope = request.body
            if not envelope.strip():
                # The empty request that carries the last logon leg; Kerberos answers with its AP-REP
                # (mutual authentication) in WWW-Authenticate, as HTTP.sys does on a 200.
                final = connection.state.pop("final_token", None)
                if isinstance(final, bytes):
                    offer = f"Negotiate {base64.b64encode(final).decode()}"
                    return Response(200, headers=[("WWW-Authenticate", offer)])
                return Response(200)
            if not connection.tls:
                # AllowUnencrypted is false on Windows: plain SOAP is only accepted over HTTPS.
                return Response(400, b"unencrypted traffic is disabled")
        status, xml = await self.wsman.handle(envelope, user, stopping)
        if status == 400:
            return Response(400)
        if status == 500:
            self.counters.add("faults")
        data = xml.encode("utf-8")
        if encrypted and isinstance(logon, NtlmLogon) and not self.faults.plaintext_answers:
            body = logon.seal(data)
            if self.faults.tampered_answers:
                # The last byte of the sealed message, just before the closing boundary line.
                at = len(body) - len(BOUNDARY + b"--\r\n") - 1
                body = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
            return Response(status, body, [("Content-Type", ENCRYPTED_TYPE)])
        return Response(status, data, [("Content-Type", SOAP_TYPE)])

    def _challenge(self, connection: Connection, token: bytes | None = None, scheme: str = "Negotiate") -> Response:
        if token:
            return Response(401, headers=[("WWW-Authenticate", f"{scheme} {base64.b64encode(token).decode()}")])
        offers = [("WWW-Authenticate", "Negotiate")]
        if connection.tls:
            offers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        return Response(401, headers=offers)

    def _accounts_file(self) -> Path:
        return self._rotated_file if self.faults.wrong_password else self._user_file

    def _authenticate(self, connection: Connection, request: Request) -> str | Response:
        header = request.headers.get("Authorization")
        if not header:
            user = connection.state.get("user")
            return user if isinstance(user, str) else self._challenge(connection)
        parsed = parse_authorization(header)
        if parsed is None:
            return self._challenge(connection)
        scheme, token = parsed
        if scheme in ("negotiate", "ntlm"):
            return self._ntlm(connection, "Negotiate" if scheme == "negotiate" else "NTLM", token)
        if scheme == "basic" and connection.tls:
            try:
                account = basic_account(token, read_user_file(self._accounts_file()))
            except AuthError:
                self.counters.add("auth_failures")
                return self._challenge(connection)
            return f"{account.domain}\\{account.user}"
        return self._challenge(connection)

    def _ntlm(self, connection: Connection, scheme: str, token: bytes) -> str | Response:
        logon = connection.state.get("logon")
        if not isinstance(logon, NtlmLogon) or logon.complete or token.startswith(_NTLM_NEGOTIATE):
            connection.state.clear()
            bound = self.certificate if connection.tls else None
            logon = NtlmLogon(self._accounts_file(), self.keytab, bound)
            connection.state["logon"] = logon
            self.counters.add("handshakes")
        try:
            reply = logon.step(token)
        except AuthError:
            self.counters.add("auth_failures")
            connection.state.clear()
            return self._challenge(connection)
        if not logon.complete:
            return self._challenge(connection, reply, scheme)
        connection.state["user"] = logon.user
        if reply:
            connection.state["final_token"] = reply
        self.counters.add("logons")
        return logon.user


class SimulatedFleet:
    """Simulated nodes sharing one event loop on a background thread; use it as a context manager."""

    def __init__(self) -> None:
        self.nodes: dict[str, SimulatedNode] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="certmon-winrm-sim-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="winrm-simulator", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_lab(
        cls, lab: Lab, *, tls: Issued | None = None, names: Sequence[str] | None = None, host: str = "127.0.0.1"
    ) -> SimulatedFleet:
        """One listening node per VM of the lab (or the named ones), answering from the lab's node folders."""
        fleet = cls()
        try:
            context = fleet.server_context(tls) if tls is not None else None
            for node in lab.nodes:
                if names is None or node.name in names:
                    fleet.add(
                        node.name,
                        lab.certs_dir / node.name,
                        lab.ntlm_user_file,
                        pfx_password=lab.password.encode(),
                        tls=context,
                        certificate=tls.der if tls is not None else None,
                        host=host,
                    )
        except BaseException:
            fleet.close()
            raise
        return fleet

    def server_context(self, issued: Issued) -> ssl.SSLContext:
        """A TLS server context presenting the given certificate."""
        cert_file = self.workdir / f"server-{id(issued)}.pem"
        cert_file.write_bytes(issued.pem + issued.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert_file))
        return context

    def add(self, name: str, folder: Path, user_file: Path, **kwargs: Any) -> SimulatedNode:
        """Start a node listening on loopback (a free port unless one is given)."""
        node = SimulatedNode(self, name, folder, user_file, **kwargs)
        self.call(node.start())
        self.nodes[name] = node
        return node

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the fleet's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __getitem__(self, name: str) -> SimulatedNode:
        return self.nodes[name]

    def __iter__(self) -> Iterator[SimulatedNode]:
        return iter(self.nodes.values())

    def addresses(self) -> dict[str, str]:
        """node name -> host:port."""
        return {name: node.address for name, node in self.nodes.items()}

    def counters(self) -> dict[str, dict[str, Any]]:
        """Every node's counters."""
        return {name: node.counters.snapshot() for name, node in self.nodes.items()}

    def reset_counters(self) -> None:
        """Zero every node's counters."""
        for node in self.nodes.values():
            node.counters.reset()

    def close(self) -> None:
        """Stop every node and the loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self.call(self._shutdown(), timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def _shutdown(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        if pending:
            # Connections end on their own once closed; cancel whatever is still busy after a moment.
            _, busy = await asyncio.wait(pending, timeout=2.0)
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)

    def __enter__(self) -> SimulatedFleet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
