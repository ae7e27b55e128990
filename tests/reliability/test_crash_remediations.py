"""SIGKILL every remediation's apply at 50 or more seeded-random points; nothing is torn, lost or left locked.

See `tests.reliability.crashkit` for the loop and its checks. Each test builds the remediation's
world (a lab copy, and its simulated Service Fabric gateway, AOS node or PostgreSQL database),
says how to put it back to "before" and how to read its targets, and runs the loop. The seed is
printed with the summary; `CERTMON_CRASH_SEED` replays a run, `CERTMON_CRASH_KILLS` changes the
count (never below 50 in CI).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext

import pytest
import yaml

from simulator.lab import Lab
from tests.reliability.crashchild import fork_server
from tests.reliability.crashkit import Scenario, crash_loop

KILLS = max(50, int(os.environ.get("CERTMON_CRASH_KILLS", "50")))
SEED = int(os.environ.get("CERTMON_CRASH_SEED", "0")) or random.SystemRandom().randrange(1, 2**32)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def context() -> Iterator[ForkServerContext]:
    """The fork server every child of this module is forked from."""
    yield fork_server()


def small_inventory(lab: Lab, **sources: dict[str, object]) -> None:
    """Only ORCH1's new Service Fabric certificates in the inventory; `sources` overrides sections."""
    folder = lab.root / "certs-small" / "ORCH1"
    folder.mkdir(parents=True)
    for name in ("ServiceFabric-new.pfx", "ServiceFabricClient-new.pfx"):
        shutil.copy(lab.certs_dir / "ORCH1" / name, folder / name)
    config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
    config["sources"]["certfolder"]["path"] = "certs-small"
    config["sources"].update(sources)
    lab.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def file_scenario(lab: Lab, remediation: str, *targets: os.PathLike[str]) -> Scenario:
    """A remediation whose only side effects are file writes."""
    from pathlib import Path

    paths = tuple(Path(t) for t in targets)
    originals = {p: p.read_bytes() for p in paths}

    def reset() -> None:
        for path, data in originals.items():
            path.write_bytes(data)

    return Scenario(
        remediation=remediation,
        config=lab.config_file,
        data_dir=lab.data_dir,
        environment=lab.environment,
        reset=reset,
        state=lambda: tuple(p.read_bytes() for p in paths),
        files=paths,
    )


def run(context: ForkServerContext, scenario: Scenario) -> None:
    """The loop, with its summary printed."""
    report = crash_loop(context, scenario, KILLS, SEED)
    print(f"\n{report.line(scenario.remediation)} (seed {SEED})")
    assert report.kills >= 50
    assert report.states["before"] and report.states["after"], report.states


def test_localagent_config_update(context: ForkServerContext, lab_copy: Lab) -> None:
    small_inventory(lab_copy)
    run(context, file_scenario(lab_copy, "localagent-config-update", lab_copy.localagent_config))
