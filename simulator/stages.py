"""The demo's rotation stages, reached by doing to the running lab what the runbook does.

`LabRotation.move_to(stage)` walks the runbook forward from the lab's stage:

* before -> staged: new infrastructure scripts (InfrastructureOld keeps the old ConfigTemplate.xml),
  the new certificates imported on every node that needs them, SQL Server and the TLS endpoints
  rebound, certmon told about InfrastructureOld (it re-reads its configuration), and
  ClusterConfig.json staged with certmon's `sf-stage-rotation` (file only);
* staged -> key-acl-missing: the new DataEncryption certificate's key on AOS2 loses the gMSA's Read
  grant (as when a certificate is imported by hand after Configure-PreReqs ran), so AXSF would fail
  with "Keyset does not exist" after the switch: certmon raises private-key-acl-missing before it;
* key-acl-missing -> staged: the remedy, Read granted to the gMSA again;
* staged -> upgraded: `sf-stage-rotation` starts the configuration upgrade on the simulated
  gateway, which walks its upgrade domains; the gateway then presents the new certificate;
* upgraded -> re-encrypting: `localagent-config-update`, `deployment-config-update`,
  `credentials-json-rotate` (run on an AOS node over WinRM), a full AXDB backup, the LCS
  "update settings" deployment (AXSF and LocalAgent parameters), `enable-reencryption`, and the
  AOS restart that schedules the batch job, which then re-encrypts on the simulated clock;
* re-encrypting -> removed-early: the old DataEncryption certificate deleted from AOS1 while
  values are still encrypted with it (the batch job's runs then end in error);
* removed-early -> re-encrypting: the remedy, the certificate re-imported on AOS1;
* re-encrypting -> done: the batch job finishes its work, `sf-cleanup-old-certs` removes the
  secondary thumbprints with another configuration upgrade, and every old certificate is
  deleted from the nodes.

Steps certmon has a remediation for are applied through certmon (the injected `Operator`),
audited like an operator's; the others are what an administrator does on the machines, done
here to the lab's files, databases and simulated services. A rotation does not run backwards:
only the detours go back to the stage they left from (key-acl-missing to staged, removed-early to
re-encrypting).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from simulator.batchjob import ReencryptionJob
from simulator.lab import Lab, edit_config, install_generation
from simulator.labconfigs import write_templates
from simulator.labmodel import STAGES
from simulator.servicefabric import lab_applications
from simulator.services import LabServices
from simulator.winrm.nodefile import key_acl, set_key_acl, set_sql_certificate

REMOVED_EARLY_NODE = "AOS1"
KEY_ACL_NODE = "AOS2"
#: the account whose Read grant the key-acl-missing stage takes away (ConfigTemplate gmsaAXSF)
KEY_ACL_ACCOUNT = "CONTOSO\\svc-AXSF$"
#: the detour stages and the stage each one leaves from and returns to
DETOURS = {"key-acl-missing": "staged", "removed-early": "re-encrypting"}
DATA_ENCRYPTION = "DataEncryption"
UPGRADE_WAIT_SECONDS = 600.0
HOUR = timedelta(hours=1)


class StageError(Exception):
    """The lab cannot move to the stage asked for; the message says why."""


class Operator(Protocol):
    """What the stage walk asks of certmon, as an operator would at the console."""

    def remediate(self, name: str, *, start_upgrade: bool = True) -> str:
        """Apply one of certmon's remediations (without starting a cluster upgrade when told); its outcome."""

    def reload(self) -> None:
        """certmon re-reads its configuration (the lab's certmon.yaml changed)."""


def path_between(current: str, target: str) -> list[str]:
    """The stages to pass through from `current` to `target`, in order; StageError for a move backwards."""
    if target not in STAGES:
        raise StageError(f"unknown stage {target!r}; one of {', '.join(STAGES)}")
    if target == current:
        return []
    steps = []
    if current in DETOURS:
        current = DETOURS[current]
        steps.append(current)
        if target == current:
            return steps
    forward = [s for s in STAGES if s not in DETOURS or s == target]
    if target not in forward or forward.index(target) < forward.index(current):
        raise StageError(
            f"a rotation does not go back from {current} to {target}; start a new demo with --stage {target}"
        )
    return steps + forward[forward.index(current) + 1 : forward.index(target) + 1]


class LabRotation:
    """Moves a running lab (its files, databases, nodes and simulated services) from stage to stage."""

    def __init__(
        self,
        lab: Lab,
        services: LabServices,
        operator: Operator,
        clock: Callable[[], datetime],
        *,
        say: Callable[[str], None] = lambda text: None,
        rows_per_run: int = 150,
    ) -> None:
        self.lab = lab
        self.services = services
        self.operator = operator
        self.clock = clock
        self.say = say
        self.rows_per_run = rows_per_run
        self.job: ReencryptionJob | None = None
        self._lock = threading.Lock()
        self._steps: dict[str, Callable[[bool], None]] = {
            "staged": self._stage_scripts_and_certificates,
            "key-acl-missing": self._revoke_gmsa_key_read,
            "upgraded": self._upgrade_cluster,
            "re-encrypting": self._start_reencryption,
            "removed-early": self._remove_data_encryption_cert,
            "done": self._finish,
        }

    @property
    def stage(self) -> str:
        """Where the lab stands."""
        return self.lab.stage

    def move_to(self, target: str, *, fast: bool = False) -> None:
        """Walk to `target`; `fast` lets configuration upgrades complete at once (building a demo at a stage)."""
        with self._lock:
            for stage in path_between(self.lab.stage, target):
                self.say(f"stage {self.lab.stage} -> {stage}")
                if self.lab.stage == "removed-early":
                    self._reimport()
                elif self.lab.stage == "key-acl-missing":
                    self._grant_gmsa_key_read()
                else:
                    self._steps[stage](fast)
                self.lab.stage = stage
                self.say(f"stage {stage} reached")

    def close(self) -> None:
        """Stop the batch job's clock."""
        if self.job is not None:
            self.job.stop()

    # -- the runbook ----------------------------------------------------------------------------

    def _stage_scripts_and_certificates(self, fast: bool) -> None:
        lab = self.lab
        lab.stage = "staged"
        write_templates(lab)
        self.say("scripts updated: Infrastructure has the new ConfigTemplate.xml, InfrastructureOld the old one")
        installed = install_generation(lab, "new")
        nodes = sorted({path.parent.name for path in installed})
        self.say(f"new certificates imported into LocalMachine\\My on {len(nodes)} nodes ({len(installed)} imports)")
        for node in lab.nodes:
            if node.purpose == "SQL":
                set_sql_certificate(lab.certs_dir / node.name, "MSSQLSERVER", lab.current("SQLCluster").thumbprint)
        self.services.rebind()
        self.say("SQL Server, the AOS, SSRS and one gateway node present the new certificates")

        def with_old_folder(config: dict[str, object]) -> None:
            sources = config.setdefault("sources", {})
            assert isinstance(sources, dict)
            sources.setdefault("configtemplate", {})["infrastructure_old"] = "InfrastructureOld"

        edit_config(lab, with_old_folder)
        self.operator.reload()
        self.say("certmon reads InfrastructureOld now (certmon.yaml changed, configuration reloaded)")
        self.say(self.operator.remediate("sf-stage-rotation", start_upgrade=False))

    def _key_file_rules(self) -> tuple[Path, str, list[list[object]]]:
        cert = self.lab.cert(DATA_ENCRYPTION, "new")
        folder = self.lab.certs_dir / KEY_ACL_NODE
        return folder, cert.thumbprint, key_acl(folder, cert.thumbprint)

    def _revoke_gmsa_key_read(self, fast: bool) -> None:
        folder, thumbprint, rules = self._key_file_rules()
        set_key_acl(folder, thumbprint, [rule for rule in rules if rule[1] != KEY_ACL_ACCOUNT])
        self.say(
            f"the new DataEncryption certificate's private key on {KEY_ACL_NODE} no longer grants Read to "
            f'{KEY_ACL_ACCOUNT}: AXSF would fail with "Keyset does not exist" after the switch'
        )

    def _grant_gmsa_key_read(self) -> None:
        folder, thumbprint, rules = self._key_file_rules()
        granted = next(
            rule for rule in key_acl(folder, "") if rule[1] == KEY_ACL_ACCOUNT
        )  # the node's default rules, as Configure-PreReqs left them
        set_key_acl(folder, thumbprint, [*rules, granted])
        self.say(f"Read on the new DataEncryption key on {KEY_ACL_NODE} granted to {KEY_ACL_ACCOUNT} again")

    def _upgrade_cluster(self, fast: bool) -> None:
        self._upgrade("sf-stage-rotation", fast)
        self.lab.stage = "upgraded"
        self.services.rebind()
        self.say("every gateway node presents the new Service Fabric certificate")

    def _upgrade(self, remediation: str, fast: bool) -> None:
        """Apply a remediation that starts a configuration upgrade, and wait for the upgrade to complete."""
        gateway = self.services.sf_gateway
        if gateway is None:
            raise StageError("the simulated Service Fabric gateway is not running")
        cluster = gateway.cluster
        step = cluster.step_seconds
        if fast:
            cluster.step_seconds = 0.0
        try:
            self.say(self.operator.remediate(remediation))
            deadline = time.monotonic() + UPGRADE_WAIT_SECONDS
            while True:
                status = cluster.status()
                if status["UpgradeState"] == "RollingForwardCompleted":
                    break
                if status["UpgradeState"] not in ("RollingForwardPending", "RollingForwardInProgress"):
                    raise StageError(f"the configuration upgrade ended {status['UpgradeState']}")
                if time.monotonic() > deadline:
                    raise StageError(f"the configuration upgrade is still {status['UpgradeState']}")
                time.sleep(0.1)
        finally:
            cluster.step_seconds = step
        self.say(f"configuration upgrade to {status['ConfigVersion']} completed")

    def _start_reencryption(self, fast: bool) -> None:
        for name in ("localagent-config-update", "deployment-config-update", "credentials-json-rotate"):
            self.say(self.operator.remediate(name))
        self._backup_axdb()
        gateway = self.services.sf_gateway
        if gateway is None:
            raise StageError("the simulated Service Fabric gateway is not running")
        gateway.cluster.applications = lab_applications(self.lab, "new")
        self.say("LCS settings applied: AXSF and the LocalAgent run with the new certificates")
        self.say(self.operator.remediate("enable-reencryption"))
        old, new = (self.lab.cert(DATA_ENCRYPTION, g).thumbprint for g in ("old", "new"))
        self.job = ReencryptionJob(
            self.lab.axdb_file, old, new, self.clock, rows_per_run=self.rows_per_run, blocker=self._blocker
        )
        self.job.schedule()
        self.job.start()
        self.say(
            f"AOS nodes restarted: the re-encryption batch job runs {self.job.run_length / HOUR:g} h every "
            f"{self.job.period / HOUR:g} h, {self.rows_per_run} values a run, {self.job.remaining()} to go"
        )

    def _backup_axdb(self) -> None:
        from simulator.axdb import AxdbWriter, open_sqlite

        connection = open_sqlite(self.lab.axdb_file)
        try:
            # SQL Server records backup times in its local time (UTC+01:00 in the lab).
            finish = self.clock().replace(tzinfo=None) + timedelta(hours=1)
            AxdbWriter(connection, "sqlite").backup(self.lab.axdb_file.stem, "D", finish, 4)
        finally:
            connection.close()
        self.say("full backup of AXDB taken")

    def _data_encryption_files(self) -> dict[str, Path]:
        cert = self.lab.cert(DATA_ENCRYPTION, "old")
        return {name: self.lab.certs_dir / name / f"{cert.file_stem}.pfx" for name in cert.nodes}

    def _blocker(self) -> str | None:
        missing = [name for name, path in self._data_encryption_files().items() if not path.exists()]
        if missing:
            return f"the old DataEncryption certificate is missing on {', '.join(missing)}"
        return None

    def _parked(self, path: Path) -> Path:
        """Where the demo keeps a removed certificate's PFX so that it can be imported again."""
        return self.lab.root / "removed" / path.parent.name / path.name

    def _remove_data_encryption_cert(self, fast: bool) -> None:
        path = self._data_encryption_files()[REMOVED_EARLY_NODE]
        parked = self._parked(path)
        parked.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, parked)
        left = self.job.remaining() if self.job is not None else "?"
        self.say(
            f"the old DataEncryption certificate was deleted from {REMOVED_EARLY_NODE} with {left} values still "
            f"encrypted with it (its PFX is kept in {parked.parent})"
        )

    def _reimport(self) -> None:
        path = self._data_encryption_files()[REMOVED_EARLY_NODE]
        shutil.move(self._parked(path), path)
        self.say(f"the old DataEncryption certificate was imported again on {REMOVED_EARLY_NODE}")

    def _finish(self, fast: bool) -> None:
        if self.job is None:
            raise StageError("the re-encryption job never started")
        moved = self.job.catch_up()
        self.say(f"the re-encryption job finished its work ({moved} values in its last run)")
        self._upgrade("sf-cleanup-old-certs", fast)
        removed = 0
        for (_role, generation), cert in self.lab.certs.items():
            if generation != "old":
                continue
            for name in cert.nodes:
                path = self.lab.certs_dir / name / f"{cert.file_stem}.pfx"
                if path.exists():
                    path.unlink()
                    removed += 1
        self.lab.stage = "done"
        self.services.rebind()
        self.say(f"old certificates deleted from the nodes ({removed} files)")
