"""The Windows Remote Shell over WS-Management, server side: Create, Command, Receive, Signal, Delete."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from collectors.winrm import soap
from simulator.winrm.faults import Faults
from simulator.winrm.powershell import PowerShellHost, Process, clixml

NS_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
STATE_RUNNING = f"{soap.NS_SHELL}/CommandState/Running"
_DURATION = re.compile(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?")
MAX_IDLE_SECONDS = 7200.0
DEFAULT_ENVELOPE = 153600
SERVER_MAX_ENVELOPE = 512000


class Fault(Exception):
    """A WS-Management fault, sent as HTTP 500."""

    def __init__(self, code: int, subcode: str, message: str, value: str = "s:Receiver") -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.message = message
        self.value = value


@dataclass
class Command:
    """A command that has run to completion in a shell; Receive hands out its output."""

    command_id: str
    process: Process
    stdout_sent: int = 0
    stderr_sent: bool = False
    done_sent: bool = False


@dataclass
class Shell:
    """A remote cmd shell owned by one user."""

    shell_id: str
    owner: str
    idle_timeout: float
    last_used: float
    commands: dict[str, Command] = field(default_factory=dict)
    operations: int = 0


def duration_seconds(text: str, default: float) -> float:
    """An xs:duration such as PT20.000S in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def reply(action: str, relates_to: str, body: str) -> str:
    """A reply envelope that relates to the request's MessageID."""
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{soap.NS_SOAP}" xmlns:a="{soap.NS_ADDRESSING}" '
        f'xmlns:x="{soap.NS_TRANSFER}" xmlns:w="{soap.NS_WSMAN}" xmlns:rsp="{soap.NS_SHELL}" '
        f'xmlns:p="{soap.NS_MS_WSMAN}"><s:Header><a:Action>{action}</a:Action>'
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{soap.ANONYMOUS}</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


def fault_reply(fault: Fault, relates_to: str, machine: str) -> str:
    """A SOAP 1.2 fault with Microsoft's WSManFault detail."""
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.value}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(fault.message)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{NS_FAULT}" Code="{fault.code}" Machine="{escape(machine)}">'
        f"<f:Message>{escape(fault.message)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return reply(ACTION_FAULT, relates_to, body)


class WsmanService:
    """One node's shells; answers SOAP envelopes for an authenticated user."""

    def __init__(self, machine: str, host: PowerShellHost, faults: Faults, count: Callable[[str], None]) -> None:
        self.machine = machine
        self.host = host
        self.faults = faults
        self._count = count
        self.shells: dict[str, Shell] = {}

    async def handle(self, envelope: bytes, user: str, stopping: asyncio.Event) -> tuple[int, str]:
        """(HTTP status, reply envelope) for one request."""
        try:
            root = SafeET.fromstring(envelope, forbid_dtd=True)
        except (SafeET.ParseError, DefusedXmlException):
            return 400, ""
        header = root.find(_q(soap.NS_SOAP, "Header"))
        body = root.find(_q(soap.NS_SOAP, "Body"))
        if header is None or body is None:
            return 400, ""
        message_id = (header.findtext(_q(soap.NS_ADDRESSING, "MessageID")) or "").strip()
        action = (header.findtext(_q(soap.NS_ADDRESSING, "Action")) or "").strip()
        resource = (header.findtext(_q(soap.NS_WSMAN, "ResourceURI")) or "").strip()
        self._count(action.rsplit("/", 1)[-1] or "(none)")
        try:
            if not message_id:
                raise Fault(
                    2150858817, "w:InvalidMessageInformationHeader", "The request has no MessageID.", "s:Sender"
                )
            policy = self.faults
            if policy.soap_fault:
                raise Fault(2147942405, "w:AccessDenied", policy.soap_fault)
            if resource != soap.RESOURCE_CMD:
                raise Fault(2150858770, "w:DestinationUnreachable", f"The resource URI {resource} is not supported.")
            text = await self._dispatch(action, header, body, user, stopping)
            return 200, reply(f"{action}Response", message_id, text)
        except Fault as fault:
            return 500, fault_reply(fault, message_id, self.machine)

    async def _dispatch(self, action: str, header: Any, body: Any, user: str, stopping: asyncio.Event) -> str:
        policy = self.faults
        if action == soap.ACTION_CREATE:
            return self._create(header, body, user, policy)
        shell = self._shell(header, user)
        if action == soap.ACTION_DELETE:
            del self.shells[shell.shell_id]
            return ""
        if action == soap.ACTION_COMMAND:
            return self._command(shell, body, policy)
        if action == soap.ACTION_RECEIVE:
            return await self._receive(shell, header, body, policy, stopping)
        if action == soap.ACTION_SIGNAL:
            return self._signal(shell, body)
        raise Fault(2150858771, "w:ActionNotSupported", f"The action {action} is not supported.", "s:Sender")

    def _create(self, header: Any, body: Any, user: str, policy: Faults) -> str:
        self._expire()
        owned = sum(1 for s in self.shells.values() if s.owner == user)
        if policy.shell_quota_exceeded or owned >= policy.max_shells_per_user:
            limit = owned if policy.shell_quota_exceeded else policy.max_shells_per_user
            raise Fault(
                soap.FAULT_MAX_SHELLS,
                "w:InternalError",
                f"The WS-Management service cannot process the request. This user is allowed a maximum number of "
                f"{limit} concurrent shells, which has been exceeded. Close existing shells or raise the quota for "
                "this user.",
            )
        shell_element = body.find(_q(soap.NS_SHELL, "Shell"))
        idle_text = shell_element.findtext(_q(soap.NS_SHELL, "IdleTimeOut")) if shell_element is not None else None
        idle = min(MAX_IDLE_SECONDS, duration_seconds(idle_text or "", MAX_IDLE_SECONDS))
        shell_id = str(uuid.uuid4()).upper()
        self.shells[shell_id] = Shell(shell_id, user, idle, time.monotonic())
        return (
            f"<x:ResourceCreated><a:Address>http://{escape(self.machine)}:5985/wsman</a:Address>"
            f"<a:ReferenceParameters><w:ResourceURI>{soap.RESOURCE_CMD}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            f"</x:ResourceCreated><rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{soap.RESOURCE_CMD}</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:IdleTimeOut>PT{idle:.3f}S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )

    def _expire(self) -> None:
        now = time.monotonic()
        for shell_id in [k for k, s in self.shells.items() if now - s.last_used > s.idle_timeout]:
            del self.shells[shell_id]

    def _shell(self, header: Any, user: str) -> Shell:
        self._expire()
        shell_id = ""
        selectors = header.find(_q(soap.NS_WSMAN, "SelectorSet"))
        if selectors is not None:
            for selector in selectors:
                if selector.get("Name") == "ShellId":
                    shell_id = (selector.text or "").strip().upper()
        shell = self.shells.get(shell_id)
        if shell is None or shell.owner != user:
            raise Fault(
                soap.FAULT_SHELL_NOT_FOUND,
                "w:InvalidSelectors",
                f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
                "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer "
                "exists on the server. Provide the correct ShellId or create a new shell and retry the operation.",
                "s:Sender",
            )
        shell.last_used = time.monotonic()
        return shell

    def _command(self, shell: Shell, body: Any, policy: Faults) -> str:
        if shell.operations >= policy.max_operations_per_shell:
            raise Fault(
                soap.FAULT_MAX_OPERATIONS,
                "w:InternalError",
                "The WS-Management service cannot process the request. This user is allowed a maximum number of "
                f"{policy.max_operations_per_shell} concurrent operations, which has been exceeded. Close existing "
                "operations for this user, or raise the quota for this user.",
            )
        line = body.find(_q(soap.NS_SHELL, "CommandLine"))
        if line is None:
            raise Fault(2150858817, "w:SchemaValidationError", "The CommandLine element is missing.", "s:Sender")
        executable = line.findtext(_q(soap.NS_SHELL, "Command")) or ""
        arguments = [a.text or "" for a in line.findall(_q(soap.NS_SHELL, "Arguments"))]
        # Windows counts operations and does not give them back on Terminate for cmd shells.
        shell.operations += 1
        process = self._faulted(self.host.run(executable, arguments), policy)
        command_id = str(uuid.uuid4()).upper()
        shell.commands[command_id] = Command(command_id, process)
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    @staticmethod
    def _faulted(process: Process, policy: Faults) -> Process:
        if process.exit_code != 0:
            return process
        if policy.script_error:
            return Process(b"", clixml("error", policy.script_error).encode(), 1)
        stdout, stderr = process.stdout, process.stderr
        if policy.stdout == "garbage":
            stdout = b"\x1b[?25l\xff\xfeWindows PowerShell\r\nCopyright (C) Microsoft Corporation.\r\n\x00\x07"
        elif policy.stdout == "truncated":
            stdout = stdout[: max(1, len(stdout) // 2)]
        if policy.clixml_progress:
            stderr = clixml("progress", "").encode() + stderr
        return Process(stdout, stderr, 0)

    def _command_of(self, shell: Shell, command_id: str) -> Command:
        command = shell.commands.get(command_id.upper())
        if command is None:
            raise Fault(
                2150858843,
                "w:InvalidSelectors",
                f"The command {command_id} is not running in shell {shell.shell_id}.",
                "s:Sender",
            )
        return command

    async def _receive(self, shell: Shell, header: Any, body: Any, policy: Faults, stopping: asyncio.Event) -> str:
        stream = body.find(f"{_q(soap.NS_SHELL, 'Receive')}/{_q(soap.NS_SHELL, 'DesiredStream')}")
        command = self._command_of(shell, (stream.get("CommandId", "") if stream is not None else ""))
        timeout = duration_seconds(header.findtext(_q(soap.NS_WSMAN, "OperationTimeout")) or "", 60.0)
        if policy.operation_timeouts != 0:
            if policy.operation_timeouts > 0:
                policy.operation_timeouts -= 1
            # The command writes nothing for the whole operation timeout: the server waits, then says so.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout)
            raise Fault(
                soap.FAULT_OPERATION_TIMEOUT,
                "w:TimedOut",
                "The WS-Management service cannot complete the operation within the time specified in "
                "OperationTimeout.",
            )
        envelope_limit = int(header.findtext(_q(soap.NS_WSMAN, "MaxEnvelopeSize")) or DEFAULT_ENVELOPE)
        room = (min(envelope_limit, SERVER_MAX_ENVELOPE) - 2048) * 3 // 4
        parts = []
        process = command.process
        cid = command.command_id
        if not command.stderr_sent and process.stderr:
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}">{_b64(process.stderr)}</rsp:Stream>')
            room -= len(process.stderr)
            command.stderr_sent = True
        chunk = process.stdout[command.stdout_sent : command.stdout_sent + max(room, 1024)]
        if chunk:
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}">{_b64(chunk)}</rsp:Stream>')
            command.stdout_sent += len(chunk)
        finished = command.stdout_sent >= len(process.stdout)
        if finished:
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(
                f'<rsp:CommandState CommandId="{cid}" State="{soap.STATE_DONE}">'
                f"<rsp:ExitCode>{process.exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
            command.done_sent = True
        else:
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"/>')
        return f'<rsp:ReceiveResponse SequenceID="0">{"".join(parts)}</rsp:ReceiveResponse>'

    def _signal(self, shell: Shell, body: Any) -> str:
        signal = body.find(_q(soap.NS_SHELL, "Signal"))
        command_id = signal.get("CommandId", "") if signal is not None else ""
        self._command_of(shell, command_id)
        del shell.commands[command_id.upper()]
        return "<rsp:SignalResponse/>"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
