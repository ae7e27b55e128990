"""`certmon demo`: generate the lab environment and run the daemon on it."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from daemon.app import Daemon
from daemon.settings import load_settings
from simulator.lab import STAGES, build_lab, write_config
from simulator.services import LabServices
from simulator.winrm import SimulatedFleet


def run_demo(directory: Path | None, port: int, stage: str, run: bool = True, sf_upgrade_seconds: float = 20.0) -> int:
    """Build the lab (in a new temporary folder unless one is given) and run the daemon on it.

    `sf_upgrade_seconds`: how long the simulated cluster spends on each upgrade domain of a
    configuration upgrade started with `certmon remediate sf-stage-rotation --apply`.
    """
    if stage not in STAGES:
        print(f"certmon demo: unknown stage {stage!r}; choose one of {', '.join(STAGES)}", file=sys.stderr)
        return 2
    root = directory or Path(tempfile.mkdtemp(prefix="certmon-demo-"))
    lab = build_lab(root, stage=stage, port=port)
    print(f"lab environment generated in {lab.root}")
    print(f"configuration: {lab.config_file}")
    if not run:
        return 0
    # One simulated Windows node per VM (read over WinRM, NTLM with encryption), and the AD FS,
    # TLS, SQL Server and Service Fabric gateway endpoints, all on loopback.
    with SimulatedFleet.from_lab(lab) as fleet, LabServices(lab, sf_upgrade_seconds=sf_upgrade_seconds) as services:
        write_config(lab, port, fleet.addresses())
        services.write_config()
        print(f"simulated Windows nodes: {', '.join(f'{n} {a}' for n, a in fleet.addresses().items())}")
        print(
            f"simulated AD FS, TLS, SQL Server and Service Fabric gateway on {', '.join(services.hosts)}: "
            f"{services.summary()}"
        )
        print(
            f"embedded AXDB and OrchestratorData (SQLite): {lab.axdb_file.parent}; agent share with config.json "
            f"and Credentials.json: {lab.agent_share}"
        )
        settings = load_settings(lab.config_file)
        daemon = Daemon(settings)
        daemon.start()
        assert daemon.http is not None
        print(f"metrics: {daemon.http.url}/metrics   (Ctrl+C to stop)", flush=True)
        try:
            daemon.wait_for_stop()
        finally:
            daemon.stop()
    return 0
