"""WS-Management messages of the Windows Remote Shell (MS-WSMV): the requests certmon sends, the replies it reads."""

from __future__ import annotations

import binascii
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from xml.etree.ElementTree import TreeBuilder
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_MS_WSMAN = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"

RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTION_CREATE = f"{NS_TRANSFER}/Create"
ACTION_DELETE = f"{NS_TRANSFER}/Delete"
ACTION_COMMAND = f"{NS_SHELL}/Command"
ACTION_RECEIVE = f"{NS_SHELL}/Receive"
ACTION_SIGNAL = f"{NS_SHELL}/Signal"
SIGNAL_TERMINATE = f"{NS_SHELL}/signal/terminate"
STATE_DONE = f"{NS_SHELL}/CommandState/Done"

# Codes of the WSManFault element that certmon reacts to.
FAULT_OPERATION_TIMEOUT = 2150858793
FAULT_SHELL_NOT_FOUND = 2150858843
FAULT_MAX_SHELLS = 2150859173
FAULT_MAX_OPERATIONS = 2150859174


def _strict_base64() -> Callable[[str], bytes]:
    """A strict base64 decoder: pybase64's (SIMD) when installed, else binascii's strict mode.

    A Receive answer carries the inventory as one base64 stream of hundreds of KiB: binascii decodes
    it at about 0.5 GB/s, a third of a millisecond per node per cycle; pybase64 about 40 times faster.
    Both refuse what is not base64 (pybase64 also refuses padding beyond the end, which binascii skips).
    """
    try:
        import pybase64
    except ImportError:  # pragma: no cover - a dependency; binascii is the fallback, not the path tested
        return functools.partial(binascii.a2b_base64, strict_mode=True)
    return functools.partial(pybase64.b64decode, validate=True)


decode_base64 = _strict_base64()


class SoapError(ValueError):
    """A reply that is not the WS-Management message it should be."""


@dataclass(frozen=True, slots=True)
class Request:
    """One SOAP request and the MessageID its reply must relate to."""

    message_id: str
    xml: bytes


@dataclass(frozen=True, slots=True)
class Output:
    """One Receive reply: output chunks and, once the command has ended, its exit code."""

    stdout: bytes
    stderr: bytes
    done: bool
    exit_code: int | None


def _seconds(value: float) -> str:
    return f"PT{max(value, 0.001):.3f}S"


def envelope(
    to: str,
    action: str,
    body: str,
    *,
    shell_id: str | None = None,
    options: dict[str, str] | None = None,
    operation_timeout: float = 20.0,
    max_envelope_size: int = 512000,
) -> Request:
    """A request envelope with a fresh MessageID."""
    message_id = f"uuid:{str(uuid.uuid4()).upper()}"
    selector = ""
    if shell_id is not None:
        selector = f'<w:SelectorSet><w:Selector Name="ShellId">{escape(shell_id)}</w:Selector></w:SelectorSet>'
    option_xml = ""
    if options:
        items = "".join(f"<w:Option Name={quoteattr(k)}>{escape(v)}</w:Option>" for k, v in options.items())
        option_xml = f"<w:OptionSet>{items}</w:OptionSet>"
    xml = (
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:w="{NS_WSMAN}" '
        f'xmlns:p="{NS_MS_WSMAN}" xmlns:rsp="{NS_SHELL}">'
        f"<s:Header><a:To>{escape(to)}</a:To>"
        f'<a:ReplyTo><a:Address s:mustUnderstand="true">{ANONYMOUS}</a:Address></a:ReplyTo>'
        f'<w:MaxEnvelopeSize s:mustUnderstand="true">{max_envelope_size}</w:MaxEnvelopeSize>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        f'<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
        f'<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>'
        f"<w:OperationTimeout>{_seconds(operation_timeout)}</w:OperationTimeout>"
        f'<w:ResourceURI s:mustUnderstand="true">{RESOURCE_CMD}</w:ResourceURI>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f"{selector}{option_xml}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
    return Request(message_id, xml.encode("utf-8"))


def create_shell(to: str, codepage: int, idle_timeout: float, **kwargs: Any) -> Request:
    """Create a cmd shell (kept open across cycles, closed by the server after idle_timeout)."""
    body = (
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>"
        "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
        f"<rsp:IdleTimeOut>{_seconds(idle_timeout)}</rsp:IdleTimeOut></rsp:Shell>"
    )
    options = {"WINRS_NOPROFILE": "TRUE", "WINRS_CODEPAGE": str(codepage)}
    return envelope(to, ACTION_CREATE, body, options=options, **kwargs)


def command(to: str, shell_id: str, executable: str, arguments: tuple[str, ...], **kwargs: Any) -> Request:
    """Start a command in the shell."""
    args = "".join(f"<rsp:Arguments>{escape(a)}</rsp:Arguments>" for a in arguments)
    body = f"<rsp:CommandLine><rsp:Command>{escape(executable)}</rsp:Command>{args}</rsp:CommandLine>"
    options = {"WINRS_CONSOLEMODE_STDIN": "TRUE", "WINRS_SKIP_CMD_SHELL": "FALSE"}
    return envelope(to, ACTION_COMMAND, body, shell_id=shell_id, options=options, **kwargs)


def receive(to: str, shell_id: str, command_id: str, **kwargs: Any) -> Request:
    """Ask for the command's output."""
    body = (
        f"<rsp:Receive><rsp:DesiredStream CommandId={quoteattr(command_id)}>stdout stderr"
        "</rsp:DesiredStream></rsp:Receive>"
    )
    return envelope(to, ACTION_RECEIVE, body, shell_id=shell_id, **kwargs)


def signal_terminate(to: str, shell_id: str, command_id: str, **kwargs: Any) -> Request:
    """Release the finished command on the server."""
    body = f"<rsp:Signal CommandId={quoteattr(command_id)}><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>"
    return envelope(to, ACTION_SIGNAL, body, shell_id=shell_id, **kwargs)


def delete_shell(to: str, shell_id: str, **kwargs: Any) -> Request:
    """Close the shell."""
    return envelope(to, ACTION_DELETE, "", shell_id=shell_id, **kwargs)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _refuse(*_args: Any) -> NoReturn:
    raise SoapError("reply is not valid XML: DTDs and entities are not allowed")


def _element_tree(data: bytes) -> Any:
    """The reply as an ElementTree, parsed by expat with what defusedxml's forbid_dtd refuses refused here too.

    No DTD means no entity can be declared, so none expands (billion laughs) and nothing external
    is read or fetched; undefined references are expat errors. Built with the C TreeBuilder fed
    straight from expat: the Python parser defusedxml extends costs twice expat's own time on a
    Receive answer, whose stream text is most of its hundreds of KiB.
    """
    builder = TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def start(name: str, attributes: dict[str, str]) -> None:
        if attributes:
            attributes = {("{" + key if "}" in key else key): value for key, value in attributes.items()}
        builder.start("{" + name if "}" in name else name, attributes)

    def end(name: str) -> None:
        builder.end("{" + name if "}" in name else name)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.Parse(data, True)
    return builder.close()


def parse_reply(data: bytes, request: Request) -> Any:
    """Parse a reply envelope and check that it answers `request`; returns the root element."""
    try:
        root = _element_tree(data)
    except (expat.ExpatError, LookupError, ValueError) as err:
        # LookupError, ValueError: the XML declaration names an encoding expat cannot read.
        if isinstance(err, SoapError):
            raise
        raise SoapError(f"reply is not valid XML: {err}") from err
    if root.tag != _q(NS_SOAP, "Envelope"):
        raise SoapError(f"reply is not a SOAP envelope (root element {root.tag})")
    relates_to = root.find(f"{_q(NS_SOAP, 'Header')}/{_q(NS_ADDRESSING, 'RelatesTo')}")
    if relates_to is None or (relates_to.text or "").strip().lower() != request.message_id.lower():
        got = None if relates_to is None else (relates_to.text or "").strip()
        raise SoapError(f"reply relates to {got or 'no message'}, expected {request.message_id}")
    return root


def _body(root: Any) -> Any:
    body = root.find(_q(NS_SOAP, "Body"))
    if body is None:
        raise SoapError("reply has no SOAP body")
    return body


def shell_id_of(root: Any) -> str:
    """The ShellId a CreateResponse names."""
    for element in _body(root).iter():
        if element.get("Name") == "ShellId" and (element.text or "").strip():
            return str(element.text).strip()
        if element.tag == _q(NS_SHELL, "ShellId") and (element.text or "").strip():
            return str(element.text).strip()
    raise SoapError("CreateResponse names no ShellId")


def command_id_of(root: Any) -> str:
    """The CommandId a CommandResponse names."""
    element = _body(root).find(f"{_q(NS_SHELL, 'CommandResponse')}/{_q(NS_SHELL, 'CommandId')}")
    if element is None or not (element.text or "").strip():
        raise SoapError("CommandResponse names no CommandId")
    return str(element.text).strip()


def output_of(root: Any, command_id: str) -> Output:
    """The output chunks and command state of a ReceiveResponse."""
    response = _body(root).find(_q(NS_SHELL, "ReceiveResponse"))
    if response is None:
        raise SoapError("reply is not a ReceiveResponse")
    stdout: list[bytes] = []
    stderr: list[bytes] = []
    for stream in response.iter(_q(NS_SHELL, "Stream")):
        if stream.get("CommandId", command_id).upper() != command_id.upper() or not stream.text:
            continue
        try:
            chunk = decode_base64(stream.text)  # ValueError for non-ASCII text
        except (binascii.Error, ValueError) as err:
            raise SoapError("ReceiveResponse stream is not base64") from err
        (stderr if stream.get("Name") == "stderr" else stdout).append(chunk)
    state = response.find(_q(NS_SHELL, "CommandState"))
    done = state is not None and state.get("State", "") == STATE_DONE
    exit_code = None
    if done:
        code = state.find(_q(NS_SHELL, "ExitCode"))
        try:
            exit_code = int((code.text or "").strip()) if code is not None else None
        except ValueError as err:
            raise SoapError("ReceiveResponse has a non-numeric ExitCode") from err
    return Output(b"".join(stdout), b"".join(stderr), done, exit_code)
