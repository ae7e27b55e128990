"""The agent share's config.json: located through OrchestratorData, kept inside the configured share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collectors.agentconfig import AgentConfig
from collectors.agentshare import AgentShare, AgentShareCollector, OutsideShareError
from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.sharelocation import ShareConfig
from collectors.sql import DatabaseSpec
from collectors.sql.orchestrator import config_json_locations
from simulator.agentshare import deployment_config, write_json
from simulator.axdb import artifact
from simulator.postgres import PgEnvironment

UNC = "\\\\DC1\\D365FFOStorage\\agent"
LOCATION = UNC + "\\wp\\Contoso\\StandaloneSetup-123456\\config.json"
SERVER, CLIENT = "A" * 40, "B" * 40


@pytest.fixture
def share(tmp_path: Path) -> AgentShare:
    root = tmp_path / "agent"
    write_json(
        root / "wp" / "Contoso" / "StandaloneSetup-123456" / "config.json", deployment_config(SERVER, CLIENT, "x")
    )
    return AgentShare(root, UNC)


def test_unc_location_maps_onto_the_share(share: AgentShare) -> None:
    expected = share.root / "wp" / "Contoso" / "StandaloneSetup-123456" / "config.json"
    assert share.resolve(LOCATION) == expected.resolve()
    # The share's name is case-insensitive, as Windows treats it; forward slashes and a trailing
    # separator on the configured share do not matter.
    assert share.resolve(LOCATION.replace("D365FFOStorage\\agent", "d365ffostorage\\AGENT")) == expected.resolve()
    assert AgentShare(share.root, UNC + "\\").resolve(LOCATION.replace("\\", "/")) == expected.resolve()
    # A local path inside the share is accepted too (an operator's explicit config_json).
    assert share.resolve(str(expected)) == expected.resolve()


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("\\\\OTHER\\share\\agent\\wp\\config.json", "not inside the agent share"),
        ("\\\\DC1\\D365FFOStorage\\agentX\\config.json", "not inside the agent share"),
        (UNC + "\\wp\\..\\..\\secrets\\config.json", "path component '..'"),
        (UNC + "\\wp\\.\\config.json", "path component '.'"),
        (UNC + "\\wp\\\\config.json", "path component ''"),
        (UNC + "\\wp\\config.json:hidden", "path component"),
        (UNC + "\\wp.\\config.json", "path component 'wp.'"),
        (UNC + "\\wp\\topology.xml", "expected a file named config.json"),
        ("/etc/config.json", "not inside the agent share"),
        ("config.json", "not inside the agent share"),
        ("   ", "empty location"),
    ],
)
def test_anything_else_is_refused(share: AgentShare, location: str, words: str) -> None:
    with pytest.raises(OutsideShareError) as caught:
        share.resolve(location)
    assert caught.value.reason is Reason.CONFIG_ERROR
    assert "refused" in str(caught.value) and words in str(caught.value)


def test_a_link_out_of_the_share_is_refused(share: AgentShare, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}", encoding="utf-8")
    os.symlink(outside, share.root / "wp" / "escape")
    with pytest.raises(OutsideShareError, match="resolves outside the agent share"):
        share.resolve(UNC + "\\wp\\escape\\config.json")


def test_collects_the_located_file(share: AgentShare) -> None:
    collector = AgentShareCollector(share, locate=lambda deadline: (LOCATION,), environment_id="env")
    observation = collector.collect("config.json", Deadline.after(5))
    config = observation.facts
    # The same facts as localagent-config.json: every rule about agent configurations reads both.
    assert isinstance(config, AgentConfig)
    assert config.path == str(share.resolve(LOCATION))
    assert (config.server_thumbprint, config.client_thumbprint) == (SERVER, CLIENT)
    assert sorted((r.role, r.thumbprint, r.reference, r.source) for r in observation.references) == [
        ("ServiceFabric", SERVER, "config.json:serviceFabric.certificateSettings.serverCertThumbprint", "agentshare"),
        (
            "ServiceFabricClient",
            CLIENT,
            "config.json:serviceFabric.certificateSettings.clientCertThumbprint",
            "agentshare",
        ),
    ]


@pytest.mark.parametrize(
    ("locations", "reason", "words"),
    [
        ((), Reason.NOT_FOUND, "no config.json artifact for environment env"),
        (("\\\\EVIL\\share\\config.json",), Reason.CONFIG_ERROR, "refused"),
        ((UNC + "\\wp\\missing\\config.json",), Reason.NOT_FOUND, "file not found"),
        (
            (UNC + "\\wp\\Gone\\config.json", UNC + "\\wp\\Other"),
            Reason.NOT_FOUND,
            "no config.json at any OrchestratorData location",
        ),
        (("\\\\EVIL\\a\\config.json", "\\\\EVIL\\b"), Reason.CONFIG_ERROR, "refused"),
    ],
)
def test_collection_fails_with_a_reason(
    share: AgentShare, locations: tuple[str, ...], reason: Reason, words: str
) -> None:
    collector = AgentShareCollector(share, locate=lambda deadline: locations, environment_id="env")
    with pytest.raises(CollectorError) as caught:
        collector.collect("config.json", Deadline.after(5))
    assert caught.value.reason is reason and words in str(caught.value)


def test_regression_a_location_naming_the_setup_folder_means_its_config_json(share: AgentShare) -> None:
    folder = UNC + "\\wp\\Contoso\\StandaloneSetup-123456"
    collector = AgentShareCollector(share, locate=lambda deadline: (folder,), environment_id="env")
    config = collector.collect("config.json", Deadline.after(5)).facts
    assert isinstance(config, ShareConfig)
    assert config.path == str(share.resolve(LOCATION)) and config.location == folder
    assert (config.server_thumbprint, config.client_thumbprint) == (SERVER, CLIENT)


def test_regression_several_rows_read_the_newest_and_say_which(share: AgentShare) -> None:
    # One row per servicing run: the newest existing config.json wins; the others are listed.
    older = UNC + "\\wp\\Contoso\\StandaloneSetup-123456"
    newer = UNC + "\\wp\\Contoso\\StandaloneSetup-234567\\config.json"
    gone = UNC + "\\wp\\Contoso\\StandaloneSetup-999999"
    new_path = share.root / "wp" / "Contoso" / "StandaloneSetup-234567" / "config.json"
    write_json(new_path, deployment_config("C" * 40, "D" * 40, "x"))
    old_path = share.resolve(LOCATION)
    os.utime(old_path, (1_700_000_000, 1_700_000_000))
    os.utime(new_path, (1_700_086_400, 1_700_086_400))
    locations = (older, newer, gone)
    collector = AgentShareCollector(share, locate=lambda deadline: locations, environment_id="env")
    observation = collector.collect("config.json", Deadline.after(5))
    config = observation.facts
    assert isinstance(config, ShareConfig)
    assert (config.location, config.server_thumbprint) == (newer, "C" * 40)
    assert config.candidates == locations
    assert [(p.reason, "StandaloneSetup-999999" in p.message) for p in observation.problems] == [
        (Reason.NOT_FOUND, True)
    ]
    samples = dict(AgentShareCollector.metrics[0].samples(config, "config.json"))
    assert samples == {(newer, str(new_path.resolve())): 3.0}
    # Same write time: the later StandaloneSetup number.
    os.utime(old_path, (1_700_086_400, 1_700_086_400))
    again = collector.collect("config.json", Deadline.after(5)).facts
    assert isinstance(again, ShareConfig) and again.location == newer


def test_broken_json_names_the_file(share: AgentShare) -> None:
    path = share.resolve(LOCATION)
    path.write_text('{"serviceFabric": {', encoding="utf-8")
    with pytest.raises(CollectorError) as caught:
        AgentShareCollector(share, config_json=LOCATION).collect("config.json", Deadline.after(5))
    assert caught.value.reason is Reason.PARSE_ERROR and str(path) in str(caught.value)


def test_nothing_configured_is_a_config_error(share: AgentShare) -> None:
    with pytest.raises(CollectorError) as caught:
        AgentShareCollector(share).collect("config.json", Deadline.after(5))
    assert caught.value.reason is Reason.CONFIG_ERROR


def test_location_from_orchestratordata_on_postgresql(share: AgentShare, pg: PgEnvironment) -> None:
    environment = "3f1d6c5e-4b6a-4d1f-9d62-2b1fb0d1a001"
    connection = pg.admin(pg.orchestrator)
    try:
        artifact(connection, environment, "config.json", LOCATION)
        artifact(connection, "another-environment", "config.json", "\\\\EVIL\\share\\config.json")
    finally:
        connection.close()
    spec = DatabaseSpec("OrchestratorData", pg.connection_string(pg.orchestrator), pg.password)
    collector = AgentShareCollector(
        share,
        locate=lambda deadline: config_json_locations(spec, environment, deadline),
        environment_id=environment,
    )
    config = collector.collect("config.json", Deadline.after(10)).facts
    assert isinstance(config, AgentConfig)
    assert config.path == str(share.resolve(LOCATION)) and config.cluster_id == "d365fo-onprem-cluster"
