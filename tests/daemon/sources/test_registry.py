"""The source registry: every section of `sources:` has its factory, paths name real settings."""

from __future__ import annotations

from pathlib import Path

from daemon.settings import Settings
from daemon.sources.registry import FACTORIES, Sources, build_collectors, configured_paths, remediation_files
from simulator.lab import Lab


def test_every_section_has_a_factory_and_every_factory_a_section() -> None:
    assert list(Sources.model_fields) == list(FACTORIES)


def test_nothing_configured_builds_nothing() -> None:
    assert build_collectors(Settings()) == []


def test_the_lab_builds_one_collector_per_configured_source(lab_settings: Settings) -> None:
    names = [c.name for c in build_collectors(lab_settings)]
    assert len(names) == len(set(names))
    assert set(names) <= set(FACTORIES)
    assert {"configtemplate", "clusterconfig", "localagent", "certfolder"} <= set(names)


def test_check_config_paths_name_settings_that_exist(lab: Lab, lab_settings: Settings) -> None:
    paths = configured_paths(lab_settings)
    for label, _ in paths:
        section, *fields = label.split(".")[1:]
        assert label.startswith("sources.") and section in Sources.model_fields, label
        assert fields, label
    found = dict(paths)
    assert found["sources.clusterconfig.path"] == lab_settings.sources.clusterconfig.path
    # Credentials.json defaults to the agent share's Credentials folder.
    share = lab_settings.sources.agentshare.path
    if lab_settings.sources.credentials.path is None and share is not None:
        assert found["sources.credentials.path"] == Path(share, "Credentials", "Credentials.json")
    assert set(remediation_files(lab_settings)) == {"localagent", "clusterconfig"}
