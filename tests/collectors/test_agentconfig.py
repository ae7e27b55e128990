"""localagent-config.json and the share config.json: the serviceFabric block."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.agentconfig import CLIENT_SETTING, SERVER_SETTING, LocalAgentConfigCollector, load_agent_config
from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from simulator.lab import Lab


def test_lab_localagent_points_at_old_certificates(lab: Lab) -> None:
    config = load_agent_config(lab.localagent_config)
    assert config.server_thumbprint == lab.cert("ServiceFabric", "old").thumbprint
    assert config.thumbprint(CLIENT_SETTING) == lab.cert("ServiceFabricClient", "old").thumbprint
    assert config.connection_endpoint == "10.0.0.11:19000"
    observation = LocalAgentConfigCollector(lab.localagent_config).collect("x", Deadline.after(5))
    assert {(r.role, r.reference) for r in observation.references} == {
        ("ServiceFabric", f"localagent-config.json:{SERVER_SETTING}"),
        ("ServiceFabricClient", f"localagent-config.json:{CLIENT_SETTING}"),
    }


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{}", "serviceFabric: missing"),
        (b'{"serviceFabric": {"certificateSettings": []}}', "serviceFabric.certificateSettings: missing"),
        (
            b'{"serviceFabric": {"certificateSettings": {"serverCertThumbprint": 42}}}',
            f"{SERVER_SETTING}: expected a string",
        ),
        (
            b'{"serviceFabric": {"certificateSettings": {"clientCertThumbprint": "abc"}}}',
            f"{CLIENT_SETTING}: not a thumbprint",
        ),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
        (b'{"serviceFabric": ', "invalid JSON at line 1"),
    ],
)
def test_broken_files_name_the_setting(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "localagent-config.json"
    path.write_bytes(content)
    with pytest.raises(CollectorError) as caught:
        load_agent_config(path)
    assert caught.value.reason is Reason.PARSE_ERROR
    assert fragment in str(caught.value)


def test_empty_thumbprints_are_not_generated_yet(tmp_path: Path) -> None:
    path = tmp_path / "localagent-config.json"
    path.write_text('{"serviceFabric": {"certificateSettings": {"serverCertThumbprint": ""}}}')
    config = load_agent_config(path)
    assert config.server_thumbprint == "" and config.client_thumbprint == ""
