"""The lab's data: AXDB and OrchestratorData (SQLite files), the agent share, Credentials.json.

Mid-rotation ("staged"): the data encryption certificate is rotated in the templates but the
re-encryption flight is off and every lab encrypted field still uses the old certificate; the
share's config.json still names the old cluster certificates; Credentials.json mixes values
encrypted to the old and the new encipherment certificate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from simulator.agentshare import (
    DEPLOYMENT_FOLDER,
    SHARE_UNC,
    credentials_document,
    deployment_config,
    lab_credentials,
    write_json,
)
from simulator.axdb import (
    LAB_PROBE_SQL,
    AxdbWriter,
    artifact,
    axdb_ddl,
    create_sqlite,
    open_sqlite,
    orchestrator_ddl,
)
from simulator.labmodel import WINRM_USER

if TYPE_CHECKING:
    from simulator.labmodel import Lab

ENVIRONMENT_ID = "3f1d6c5e-4b6a-4d1f-9d62-2b1fb0d1a001"
ENCRYPTED_FIELDS = 1200
CREDENTIALS_SCRIPT = "C:\\D365\\Infrastructure\\Configure-CredentialsJson.ps1"
CONFIGURATION_FILE = "C:\\D365\\Infrastructure\\ConfigTemplate.xml"
# Microsoft's Configure-CredentialsJson.ps1 is not published: the lab's Infrastructure folder holds this
# stand-in, and the simulated AOS node runs its emulation (simulator/winrm/credentialsjson.py) for the
# installed file or a byte-identical copy of it.
CREDENTIALS_SCRIPT_STAND_IN = (
    b"# certmon lab: stand-in for the Infrastructure scripts' Configure-CredentialsJson.ps1 (not published).\r\n"
    b"# The simulated AOS node emulates -Action Rotate for this file and byte-identical copies of it.\r\n"
    b"param([string]$ConfigurationFilePath, [string]$Action)\r\n"
)


def config_json_location() -> str:
    """Where OrchestratorData says the deployment's config.json is."""
    return "\\".join((SHARE_UNC, *DEPLOYMENT_FOLDER, "config.json"))


def write_agent_share(lab: Lab) -> None:
    """config.json of the deployment (old cluster thumbprints) and Credentials.json (old and new recipients)."""
    folder = lab.agent_share.joinpath(*DEPLOYMENT_FOLDER)
    document = deployment_config(
        lab.cert("ServiceFabric", "old").thumbprint,
        lab.cert("ServiceFabricClient", "old").thumbprint,
        f"{lab.node('ORCH1').ip_address}:19000",
    )
    write_json(folder / "config.json", document)
    encipherment = {g: lab.cert("ServiceFabricEncryption", g).issued.cert for g in ("old", "new")}
    if lab.stage == "before":
        encipherment["new"] = encipherment["old"]
    write_json(lab.credentials_json, credentials_document(lab_credentials(encipherment)))


def write_databases(lab: Lab) -> None:
    """AXDB and OrchestratorData as SQLite files, seeded for the lab's stage."""
    create_sqlite(lab.axdb_file, axdb_ddl("sqlite"))
    create_sqlite(lab.orchestrator_file, orchestrator_ddl("sqlite"))
    connection = open_sqlite(lab.axdb_file)
    try:
        writer = AxdbWriter(connection, "sqlite")
        writer.partition()
        writer.flight("EnableBatchPriorityScheduling", 1)
        writer.config("EnableEncryptedDataRotation", "False")
        writer.encrypted_fields(lab.cert("DataEncryption", "old").thumbprint, ENCRYPTED_FIELDS)
        # A full backup the night before (server local time UTC+01:00).
        finish = (lab.now - timedelta(hours=10)).replace(tzinfo=None) + timedelta(hours=1)
        writer.backup(lab.axdb_file.stem, "D", finish, 4)
    finally:
        connection.close()
    connection = open_sqlite(lab.orchestrator_file)
    try:
        artifact(connection, ENVIRONMENT_ID, "config.json", config_json_location())
    finally:
        connection.close()


def write_node_facts(lab: Lab) -> None:
    """AOS nodes know where Configure-CredentialsJson.ps1, ConfigTemplate.xml and the agent share are."""
    from simulator.winrm.nodefile import update_node_facts

    facts = {
        "script": CREDENTIALS_SCRIPT,
        "paths": {"C:\\D365\\Infrastructure": "../../Infrastructure", SHARE_UNC: "../../agent-share"},
        # The lab's AOS nodes are set up for the second hop to the share (CredSSP or Kerberos delegation).
        "delegation": True,
    }
    for node in lab.nodes:
        if node.purpose == "AOS":
            # GetTempPath() in a WinRM session: the account's own profile (credentials-json-rotate's copy mode).
            temp = {
                "path": f"C:\\Users\\{WINRM_USER}\\AppData\\Local\\Temp\\",
                "folder": f"../../node-temp/{node.name}",
            }
            update_node_facts(lab.certs_dir / node.name, credentials_json=facts, temp=temp)
    lab.infrastructure.mkdir(parents=True, exist_ok=True)
    (lab.infrastructure / CREDENTIALS_SCRIPT.rsplit("\\", 1)[-1]).write_bytes(CREDENTIALS_SCRIPT_STAND_IN)
    from simulator.labpackages import write_package_files

    write_package_files(lab)


def config_sections(lab: Lab) -> dict[str, Any]:
    """The certmon.yaml `sql`, `agentshare` and `credentials` sections for the lab's files."""
    root = lab.root
    return {
        "sql": {
            "axdb": {"database_file": str(lab.axdb_file.relative_to(root))},
            "orchestrator_data": {"database_file": str(lab.orchestrator_file.relative_to(root))},
            "environment_id": ENVIRONMENT_ID,
            "probes": [
                {
                    "name": "lab-encrypted-fields",
                    "sql": LAB_PROBE_SQL.format(old=lab.cert("DataEncryption", "old").thumbprint),
                }
            ],
            "interval_seconds": 60,
        },
        "agentshare": {"path": str(lab.agent_share.relative_to(root)), "unc": SHARE_UNC, "interval_seconds": 60},
        "credentials": {
            "interval_seconds": 60,
            "rotate": {
                "node": "AOS1",
                "script": CREDENTIALS_SCRIPT,
                "configuration_file": CONFIGURATION_FILE,
                "second_hop": "delegation",
            },
        },
    }
