"""Transport credssp (pywinrm + requests-credssp): wired, refused clearly when the node or the install cannot do it.

No CredSSP server exists in the simulated node (TLS inside HTTP with a TSRequest/SPNEGO exchange), so
a successful CredSSP logon is UNVERIFIED here (docs/credentials-rotate.md); what is proven is that
certmon speaks CredSSP first (requests-credssp's handshake starts) and turns a node that offers only
Negotiate into a clear refusal naming what to change.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.winrm import WinRMCollector
from collectors.winrm.transport import DEFAULT_PORTS, Endpoint, _protocol_options
from daemon.sources.winrm import WinRMSource


def test_credssp_is_a_transport_with_message_encryption() -> None:
    endpoint = Endpoint("AOS1", "aos1.contoso.com", DEFAULT_PORTS["credssp"], "credssp", "CONTOSO\\svc", "pw")
    options = _protocol_options(endpoint)
    assert endpoint.url == "http://aos1.contoso.com:5985/wsman"
    assert (options["transport"], options["message_encryption"]) == ("credssp", "always")


def test_a_node_that_does_not_offer_credssp_is_refused_naming_the_fix(
    make_collector: Callable[..., WinRMCollector],
) -> None:
    # The simulated node offers Negotiate (and Basic over HTTPS) like a node without Enable-WSManCredSSP -Role Server.
    collector = make_collector(transport="credssp")
    with pytest.raises(CollectorError) as caught:
        collector.collect("AOS1", Deadline.after(20))
    assert caught.value.reason is Reason.AUTH_FAILED
    message = str(caught.value)
    assert "the node does not offer CredSSP" in message and "Enable-WSManCredSSP -Role Server" in message
    assert "'Negotiate'" in message  # what the node did offer, from requests-credssp's own message


def test_without_requests_credssp_the_transport_is_refused_before_any_connection() -> None:
    # A separate interpreter where the optional package cannot be imported (as on an install without certmon[credssp]).
    program = """
import sys
sys.modules["requests_credssp"] = None
from collectors.winrm.transport import Endpoint, open_protocol
from daemon.sources.winrm import WinRMSource
try:
    open_protocol(Endpoint("AOS1", "127.0.0.1", 9, "credssp", "u", "p"), 1.0)
except ValueError as err:
    print("refused:", err)
print("check-config:", WinRMSource(transport="credssp", nodes=["AOS1"]).auth_problem())
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    assert "refused: transport credssp needs the requests-credssp package (install certmon[credssp])" in done.stdout
    assert "check-config: sources.winrm: transport credssp needs the requests-credssp package" in done.stdout


def test_with_requests_credssp_installed_check_config_has_no_problem() -> None:
    assert WinRMSource(transport="credssp", nodes=["AOS1"]).auth_problem() is None
