"""One node's WinRM connection, reused across cycles: HTTP session, authentication context and shell.

pywinrm supplies the logon, NTLM/Kerberos/Basic authentication and message encryption
(`winrm.protocol.Protocol.send_message`; after the logon exchange.py sends the messages on the
logged-on connection). The shell conversation is ours, for three reasons:
pywinrm's `run_ps` opens and closes a shell and re-authenticates on every call (8 requests), its
receive loop retries operation-timeout faults forever, and it cannot check a reply's RelatesTo.
Steady state here is Command + Receive + Signal: three requests and no handshake per cycle.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import soap
from collectors.winrm.transport import (
    Endpoint,
    abort_exchanges,
    arm_deadline,
    classify,
    connection_alive,
    open_protocol,
    refused,
)

log = logging.getLogger("certmon.winrm")

# Output larger than this is not an inventory: stop reading instead of filling memory.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
# Time left for the reply to travel after the server's operation timeout fires.
REPLY_MARGIN = 1.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command printed and how it ended."""

    stdout: bytes
    stderr: bytes
    exit_code: int


class _Retry(Exception):
    """A failure that a fresh connection or a fresh shell may cure; retried once."""

    def __init__(self, cause: BaseException, new_shell: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.new_shell = new_shell


class WinRMSession:
    """Runs commands on one node, keeping the connection and the shell between calls."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._protocol: Protocol | None = None
        self._shell_id: str | None = None
        self._orphans: list[str] = []
        self._lock = threading.Lock()
        #: SOAP requests sent (handshake legs not included), for diagnostics
        self.requests_sent = 0
        #: connections authenticated (each NTLM one costs a handshake)
        self.logons = 0

    # -- public ---------------------------------------------------------------------------

    def run(self, executable: str, arguments: tuple[str, ...], deadline: Deadline) -> CommandResult:
        """Run a command in the node's shell and wait for it, never past the deadline."""
        if not self._lock.acquire(blocking=False):
            raise self._error(Reason.TIMEOUT, "a previous collection of this node is still running")
        try:
            try:
                return self._attempt(executable, arguments, deadline)
            except _Retry as retry:
                fresh = "shell" if retry.new_shell else "connection"
                log.debug("%s: retrying on a fresh %s: %s", self.endpoint.node, fresh, retry)
                self._recover(retry.new_shell)
                try:
                    return self._attempt(executable, arguments, deadline, retried=True)
                except _Retry as again:
                    raise self._map(again.cause) from again.cause
        except CollectorError:
            raise
        except Exception as err:
            raise self._map(err) from err
        finally:
            self._lock.release()

    def close(self, timeout: float = 5.0) -> None:
        """Delete the shell (best effort) and drop the connection; a collection still running is cut off."""
        if not self._lock.acquire(timeout=timeout):
            # A hung or trickling node holds the collection past `timeout`: end its exchange now.
            protocol = self._protocol
            if protocol is not None:
                abort_exchanges(protocol)
            return
        try:
            if self._protocol is not None:
                deadline = Deadline.after(timeout)
                for shell_id in [*self._orphans, *([self._shell_id] if self._shell_id else [])]:
                    self._delete_quietly(shell_id, deadline)
            self._orphans.clear()
            self._shell_id = None
            self._reset_connection()
        finally:
            self._lock.release()

    # -- one attempt ----------------------------------------------------------------------

    def _attempt(
        self, executable: str, arguments: tuple[str, ...], deadline: Deadline, retried: bool = False
    ) -> CommandResult:
        reused = self._protocol is not None and connection_alive(self._protocol, self.endpoint)
        if self._protocol is not None and not reused:
            # The server closed the idle connection, and NTLM authenticates a connection,
            # not a request: log on again before sending anything.
            self._reset_connection()
        try:
            self._connect(deadline)
            self._clean_orphans(deadline)
            if self._shell_id is None:
                self._shell_id = self._create_shell(deadline)
            shell_id = self._shell_id
            try:
                command_id = self._start(shell_id, executable, arguments, deadline)
            except WSManFaultError as fault:
                if not retried and fault.wsman_fault_code in (soap.FAULT_SHELL_NOT_FOUND, soap.FAULT_MAX_OPERATIONS):
                    # The shell expired, the node restarted, or the shell used up its operations quota
                    # (Windows does not give operations back on Terminate): use a new shell.
                    raise _Retry(fault, new_shell=True) from fault
                raise
            result = self._collect_output(shell_id, command_id, deadline)
            self._terminate(shell_id, command_id, deadline)
            return result
        except (requests.ConnectionError, InvalidCredentialsError, WinRMTransportError) as err:
            is_refused = isinstance(err, requests.ConnectionError) and refused(err)
            if reused and not retried and not is_refused and not isinstance(err, requests.exceptions.SSLError):
                raise _Retry(err, new_shell=False) from err
            self._forget_after_failure()
            raise
        except (requests.Timeout, CollectorError, soap.SoapError):
            self._forget_after_failure()
            raise
        except (WSManFaultError, WinRMOperationTimeoutError):
            self._abandon_shell()
            raise
        except Exception:
            self._forget_after_failure()
            raise

    def _connect(self, deadline: Deadline) -> None:
        if self._protocol is not None:
            return
        try:
            self._protocol = open_protocol(self.endpoint, self._remaining(deadline))
        except ValueError as err:
            raise self._error(Reason.CONFIG_ERROR, str(err)) from err
        self.logons += 1

    def _create_shell(self, deadline: Deadline) -> str:
        request = soap.create_shell(
            self.endpoint.url,
            self.endpoint.codepage,
            self.endpoint.shell_idle_timeout,
            **self._timing(deadline),
        )
        return soap.shell_id_of(self._send(request, deadline))

    def _start(self, shell_id: str, executable: str, arguments: tuple[str, ...], deadline: Deadline) -> str:
        request = soap.command(self.endpoint.url, shell_id, executable, arguments, **self._timing(deadline))
        return soap.command_id_of(self._send(request, deadline))

    def _collect_output(self, shell_id: str, command_id: str, deadline: Deadline) -> CommandResult:
        """Receive until the command is done; operation-timeout faults are retried until the deadline."""
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        size = 0
        while True:
            remaining = self._remaining(deadline)
            wait = min(self.endpoint.operation_timeout, max(0.5, remaining - REPLY_MARGIN))
            request = soap.receive(self.endpoint.url, shell_id, command_id, **self._timing(deadline, wait))
            try:
                output = soap.output_of(self._send(request, deadline), command_id)
            except WinRMOperationTimeoutError:
                # The command has not written anything within the operation timeout; ask again.
                continue
            stdout.append(output.stdout)
            stderr.append(output.stderr)
            size += len(output.stdout) + len(output.stderr)
            if size > MAX_OUTPUT_BYTES:
                raise self._error(Reason.BAD_OUTPUT, f"command output exceeds {MAX_OUTPUT_BYTES} bytes")
            if output.done:
                code = -1 if output.exit_code is None else output.exit_code
                return CommandResult(b"".join(stdout), b"".join(stderr), code)

    def _terminate(self, shell_id: str, command_id: str, deadline: Deadline) -> None:
        """Signal terminate so the server releases the command; its failure only costs the shell."""
        try:
            request = soap.signal_terminate(self.endpoint.url, shell_id, command_id, **self._timing(deadline))
            self._send(request, deadline)
        except (WinRMError, WinRMOperationTimeoutError, WinRMTransportError, soap.SoapError) as err:
            log.debug("%s: terminate failed, replacing the shell: %s", self.endpoint.node, err)
            self._abandon_shell()
        except (requests.RequestException, CollectorError) as err:
            log.debug("%s: terminate failed, reconnecting next time: %s", self.endpoint.node, err)
            self._forget_after_failure()

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, request: soap.Request, deadline: Deadline) -> Any:
        protocol = self._protocol
        assert protocol is not None
        self._arm(protocol, deadline)
        self.requests_sent += 1
        reply = protocol.send_message(request.xml.decode("utf-8"))
        return soap.parse_reply(reply, request)

    def _arm(self, protocol: Protocol, deadline: Deadline) -> None:
        """No single HTTP exchange may outlive the deadline."""
        # pywinrm passes this to requests as the timeout; floats work although it is typed int.
        protocol.transport.read_timeout_sec = self._remaining(deadline)  # type: ignore[assignment]
        # The timeout bounds each read; the adapter's deadline bounds the exchange (a trickling node).
        arm_deadline(protocol, deadline.at)

    def _remaining(self, deadline: Deadline) -> float:
        remaining = deadline.remaining()
        if remaining <= 0.05:
            raise self._error(Reason.TIMEOUT, "deadline exceeded before the node answered")
        return remaining

    def _timing(self, deadline: Deadline, wait: float | None = None) -> dict[str, Any]:
        remaining = self._remaining(deadline)
        timeout = wait if wait is not None else min(self.endpoint.operation_timeout, max(0.5, remaining - REPLY_MARGIN))
        return {"operation_timeout": timeout, "max_envelope_size": self.endpoint.max_envelope_size}

    def _recover(self, new_shell: bool) -> None:
        if new_shell:
            self._abandon_shell()
        else:
            self._reset_connection()

    def _abandon_shell(self) -> None:
        if self._shell_id is not None:
            self._orphans.append(self._shell_id)
            self._shell_id = None

    def _forget_after_failure(self) -> None:
        """After a timeout or a broken exchange the connection and the shell's command are unknown."""
        self._abandon_shell()
        self._reset_connection()

    def _reset_connection(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            try:
                protocol.transport.close_session()
            except Exception:  # closing a broken session must not hide the real error
                log.debug("%s: closing the HTTP session failed", self.endpoint.node, exc_info=True)

    def _clean_orphans(self, deadline: Deadline) -> None:
        """Delete shells abandoned after a failure, so they do not count against the user's quota."""
        while self._orphans and deadline.remaining() > self.endpoint.operation_timeout / 4:
            self._delete_quietly(self._orphans.pop(0), deadline)
        del self._orphans[8:]

    def _delete_quietly(self, shell_id: str, deadline: Deadline) -> None:
        try:
            self._connect(deadline)
            self._send(soap.delete_shell(self.endpoint.url, shell_id, **self._timing(deadline)), deadline)
        except Exception as err:  # noqa: BLE001 - best effort: the server expires idle shells anyway
            log.debug("%s: deleting shell %s failed: %s", self.endpoint.node, shell_id, err)

    # -- errors ---------------------------------------------------------------------------

    def _error(self, reason: Reason, message: str) -> CollectorError:
        return CollectorError(f"{self.endpoint.node} ({self.endpoint.url})", reason, message)

    def _map(self, err: BaseException) -> CollectorError:
        """Turn a library exception into a CollectorError with a reason from the closed set."""
        if isinstance(err, CollectorError):
            return err
        reason, message = classify(err)
        return self._error(reason, message)
