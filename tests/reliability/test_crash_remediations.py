"""SIGKILL every remediation's apply at 50 or more seeded-random points; nothing is torn, lost or left locked.

See `tests.reliability.crashkit` for the loop and its checks. Each test builds the remediation's
world (a lab copy, and its simulated Service Fabric gateway, AOS node or PostgreSQL database),
says how to put it back to "before" and how to read its targets, and runs the loop. The seed is
printed with the summary; `CERTMON_CRASH_SEED` replays a run, `CERTMON_CRASH_KILLS` changes the
count (never below 50 in CI).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import shutil
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime
from multiprocessing.context import ForkServerContext
from pathlib import Path

import pytest
import yaml

from collectors.sql.queries import CONFIG_KEY, FLIGHT_NAME
from remediations.outcome import Outcome
from remediations.servicefabric import StageRotation
from simulator.agentshare import DEPLOYMENT_FOLDER, decrypt_value
from simulator.axdb import INITIAL_PARTITION
from simulator.lab import Lab, write_config
from simulator.postgres import PgEnvironment
from simulator.winrm import SimulatedFleet
from simulator.winrm.nodefile import read_node_facts
from tests.axdbkit import read_axdb_on_postgres, seed_reencryption_off
from tests.reliability.crashchild import fork_server
from tests.reliability.crashkit import Scenario, crash_loop
from tests.sfkit import SfLab, remediating, sf_lab

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


def test_deployment_config_update(context: ForkServerContext, lab_copy: Lab) -> None:
    small_inventory(lab_copy)
    share_file = lab_copy.agent_share.joinpath(*DEPLOYMENT_FOLDER, "config.json").resolve()
    run(context, file_scenario(lab_copy, "deployment-config-update", share_file))


# -- Service Fabric: ClusterConfig.json and the gateway's upgrade -----------------------------------


def cluster_state(sf: SfLab) -> tuple[str, str | None, str]:
    """What the cluster runs, the upgrade it was asked for (None: none), and that upgrade's state."""
    cluster = sf.cluster
    running = str(json.loads(cluster.config_text)["ClusterConfigurationVersion"])
    upgrade = cluster.upgrade
    return running, upgrade.target_version if upgrade else None, upgrade.state if upgrade else ""


def saved_cluster(sf: SfLab) -> Callable[[], None]:
    """A function that puts the simulated cluster back as it is now."""
    text, upgrade = sf.cluster.config_text, copy.copy(sf.cluster.upgrade)

    def restore() -> None:
        sf.cluster.config_text = text
        sf.cluster.upgrade = copy.copy(upgrade)

    return restore


def finish_started_upgrade(sf: SfLab) -> None:
    """The operator waits for an upgrade a killed run started before running it again."""
    if sf.cluster.upgrade is not None and sf.cluster.upgrade.state == "RollingForwardInProgress":
        sf.finish_upgrade()


def upgrade_scenario(sf: SfLab, remediation: str, intermediate: str) -> Scenario:
    """A ClusterConfig.json edit followed by a configuration upgrade started on the gateway."""
    path = sf.lab.cluster_config
    original = path.read_bytes()
    restore_cluster = saved_cluster(sf)

    def reset() -> None:
        path.write_bytes(original)
        restore_cluster()

    def state() -> Hashable:
        running, asked, _ = cluster_state(sf)
        # An upgrade that completed and one in progress to the same version are the same outcome.
        return path.read_bytes(), asked or running

    def between(seen: Hashable) -> str | None:
        data, version = seen  # type: ignore[misc]
        return intermediate if data != original and version == cluster_state(sf)[0] else None

    return Scenario(
        remediation=remediation,
        config=sf.lab.config_file,
        data_dir=sf.lab.data_dir,
        environment=sf.lab.environment,
        reset=reset,
        state=state,
        files=(path,),
        intermediate=between,
        settle=lambda: finish_started_upgrade(sf),
    )


def stage(sf: SfLab, now: datetime) -> None:
    """Stage the rotation in-process and let its upgrade finish: where sf-cleanup-old-certs starts."""
    prepared = remediating(sf, now)
    try:
        assert prepared.engine.apply(StageRotation(), prepared.ctx).outcome is Outcome.APPLIED
    finally:
        prepared.close()


def test_sf_stage_rotation(context: ForkServerContext, sf: SfLab) -> None:
    sf.unstage_file()
    sf.write_settings()
    run(context, upgrade_scenario(sf, "sf-stage-rotation", "staged, upgrade not started"))


def test_sf_cleanup_old_certs(context: ForkServerContext, sf: SfLab, now: datetime) -> None:
    sf.unstage_file()
    sf.write_settings()
    stage(sf, now)
    sf.finish_upgrade()
    sf.finish_reencryption()
    run(context, upgrade_scenario(sf, "sf-cleanup-old-certs", "cleaned, upgrade not started"))


def test_sf_replica_check_timeout(context: ForkServerContext, lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, reset_replica_timeout=True) as sf:
        sf.unstage_file()
        sf.write_settings()
        stage(sf, now)
        sf.clock.advance(2 * 3600)
        restore = saved_cluster(sf)

        def timeout() -> Hashable:
            upgrade = sf.cluster.upgrade
            assert upgrade is not None and upgrade.state == "RollingForwardInProgress"
            return upgrade.replica_timeout, upgrade.mode

        scenario = Scenario(
            remediation="sf-replica-check-timeout",
            config=lab_copy.config_file,
            data_dir=lab_copy.data_dir,
            environment=lab_copy.environment,
            reset=restore,
            state=timeout,
        )
        run(context, scenario)


# -- Credentials.json: a command on the AOS node ------------------------------------------------------


@pytest.mark.parametrize("second_hop", ["delegation", "copy"])
def test_credentials_json_rotate(context: ForkServerContext, lab_copy: Lab, second_hop: str) -> None:
    small_inventory(lab_copy)
    with SimulatedFleet.from_lab(lab_copy, names=["AOS1"]) as fleet:
        write_config(lab_copy, 0, fleet.addresses())
        config = yaml.safe_load(lab_copy.config_file.read_text(encoding="utf-8"))
        config["sources"]["certfolder"]["path"] = "certs-small"
        config["sources"]["winrm"].update(config_template=None, nodes=["AOS1"])
        # copy: the script and the file go to the node's temporary folder and back (no second hop at all).
        config["sources"]["credentials"]["rotate"]["second_hop"] = second_hop
        lab_copy.config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path = lab_copy.credentials_json
        original = path.read_bytes()
        keys = {
            g: (
                lab_copy.cert("ServiceFabricEncryption", g).issued.cert,
                lab_copy.cert("ServiceFabricEncryption", g).issued.key,
            )
            for g in ("old", "new")
        }

        def state() -> Hashable:
            # A command the node was running when its client died finishes on the node; wait for it.
            fleet.call(asyncio.sleep(0))
            document = json.loads(path.read_text(encoding="utf-8"))
            values = []
            for group, names in document.items():
                for name, value in names.items():
                    readers = []
                    for generation, key in keys.items():
                        try:
                            plaintext = decrypt_value(value, [key])
                        except ValueError:
                            continue
                        readers.append(generation)
                    values.append((group, name, plaintext, tuple(readers)))
            return tuple(values)

        async def idle_shells_expire() -> None:
            # A killed client never deletes its shells; the node closes them after the IdleTimeOut certmon
            # asked for (10 minutes or more). The operator's pause before running again, in the node's time.
            for shell in fleet["AOS1"].wsman.shells.values():
                shell.last_used -= shell.idle_timeout + 1

        scenario = Scenario(
            remediation="credentials-json-rotate",
            config=lab_copy.config_file,
            data_dir=lab_copy.data_dir,
            environment=lab_copy.environment,
            reset=lambda: path.write_bytes(original),
            state=state,
            files=(path,),
            exact=False,  # the script encrypts afresh each time: the same plaintexts, other bytes
            settle=lambda: fleet.call(idle_shells_expire()),
        )
        run(context, scenario)
        if second_hop == "copy":
            # Killed runs leave their folder on the node; every later run removes them, then its own.
            temp = lab_copy.certs_dir / "AOS1" / read_node_facts(lab_copy.certs_dir / "AOS1")["temp"]["folder"]
            assert not [p.name for p in temp.resolve().iterdir()]


# -- SQL: one transaction on AXDB (PostgreSQL through psqlODBC) ----------------------------------------


def test_enable_reencryption(context: ForkServerContext, lab_copy: Lab, pg: PgEnvironment) -> None:
    seed_reencryption_off(pg)
    read_axdb_on_postgres(lab_copy, pg)

    def rows() -> Hashable:
        # Read by another session: only what committed is visible.
        db = pg.admin(pg.axdb)
        try:
            cursor = db.cursor()
            cursor.execute(
                "SELECT FLIGHTSERVICEID, ENABLED, PARTITION FROM SYSFLIGHTING WHERE FLIGHTNAME = ? ORDER BY PARTITION",
                (FLIGHT_NAME,),
            )
            flight = tuple(tuple(r) for r in cursor.fetchall())
            cursor.execute("SELECT VALUE FROM SECURITYCONFIG WHERE KEY_ = ?", (CONFIG_KEY,))
            return flight, tuple(tuple(r) for r in cursor.fetchall())
        finally:
            db.close()

    def reset() -> None:
        db = pg.admin(pg.axdb)
        try:
            cursor = db.cursor()
            cursor.execute(
                "DELETE FROM SYSFLIGHTING WHERE FLIGHTNAME = ? AND PARTITION = ?", (FLIGHT_NAME, INITIAL_PARTITION)
            )
            cursor.execute("UPDATE SECURITYCONFIG SET VALUE = 'False' WHERE KEY_ = ?", (CONFIG_KEY,))
        finally:
            db.close()

    scenario = Scenario(
        remediation="enable-reencryption",
        config=lab_copy.config_file,
        data_dir=lab_copy.data_dir,
        environment=lab_copy.environment,
        reset=reset,
        state=rows,
    )
    run(context, scenario)
