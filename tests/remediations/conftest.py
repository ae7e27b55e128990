"""Remediation fixtures: a lab copy collected by the real daemon, its context and engine."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.app import Daemon
from daemon.remediation import remediation_context, remediation_engine
from daemon.settings import Settings, load_settings
from remediations.base import RemediationContext
from remediations.engine import Engine
from remediations.sfgates import OVERRIDE_OPTION
from simulator.lab import Lab

# The Orchestrator nodes hold both Service Fabric certificates; one node keeps collection fast.
INVENTORY_NODES = ["ORCH1"]


def tree_hashes(root: Path, skip: str = "data") -> dict[str, str]:
    """sha256 of every file under root except the data directory."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != skip
    }


def lab_settings_for(lab: Lab) -> Settings:
    """The lab's settings with a one-node inventory."""
    settings = load_settings(lab.config_file)
    settings.sources.certfolder.nodes = list(INVENTORY_NODES)
    return settings


@pytest.fixture
def rsettings(lab_copy: Lab) -> Settings:
    """Settings of a private lab copy."""
    return lab_settings_for(lab_copy)


@pytest.fixture
def daemon(rsettings: Settings, now: datetime) -> Iterator[Daemon]:
    """A daemon that has collected the lab once, at the lab's fixed moment."""
    instance = Daemon(rsettings, clock=lambda: now)
    instance.collect_once()
    yield instance
    instance.stop()


def lab_context(daemon: Daemon) -> RemediationContext:
    """The context `certmon remediate --without-cluster-evidence` builds.

    The generated lab has no Service Fabric gateway source, so the LocalAgent-side remediations
    refuse without the operator's override (tests/remediations/test_sf_gates.py tests that gate);
    the other tests here exercise the file edit and the engine, as an operator who confirmed the
    configuration upgrade by hand would run them.
    """
    ctx = remediation_context(daemon)
    return dataclasses.replace(ctx, options={**ctx.options, OVERRIDE_OPTION: True})


@pytest.fixture
def ctx(daemon: Daemon) -> RemediationContext:
    """The remediation context the CLI would build (with the operator's override, see `lab_context`)."""
    return lab_context(daemon)


@pytest.fixture
def engine(daemon: Daemon) -> Engine:
    """The engine the CLI would build, with a short lock wait."""
    return remediation_engine(daemon, lock_timeout=0.2, actor="tester")
