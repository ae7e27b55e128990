"""The running packages' thumbprint settings (*.Package.Current.xml): parsed from samples, read over WinRM."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

from collectors.base import Deadline
from collectors.errors import Reason
from collectors.winrm import WinRMCollector
from collectors.winrm.packages import PACKAGES_COMMAND, interpret_packages, parse_package
from simulator.lab import Lab
from simulator.winrm.powershell import decode_encoded_command

SAMPLES = Path(__file__).parents[2] / "samples" / "servicefabric"
AXSF = "C:\\ProgramData\\SF\\AOS1\\Fabric\\work\\Applications\\AXSFType_App1\\AXSF.Package.Current.xml"


def test_the_axsf_sample_gives_its_four_thumbprints_and_skips_encrypted_values() -> None:
    settings, problems = parse_package((SAMPLES / "AXSF.Package.Current.xml").read_bytes(), AXSF)
    assert problems == []
    assert [(s.section, s.parameter, s.role, s.thumbprint) for s in settings] == [
        (
            "DataAccess",
            "DataEncryptionCertificateThumbprint",
            "DataEncryption",
            "1A2B3C4D5E6F708192A3B4C5D6E7F80912A3B4C5",
        ),
        ("DataAccess", "DataSigningCertificateThumbprint", "DataSigning", "2B3C4D5E6F708192A3B4C5D6E7F80912A3B4C5D6"),
        (
            "Infrastructure",
            "SessionAuthenticationCertificateThumbprint",
            "SessionAuthentication",
            "3C4D5E6F708192A3B4C5D6E7F80912A3B4C5D6E7",
        ),
        ("SmbStorage", "SharedAccessThumbprint", "SharedAccessSMB", "4D5E6F708192A3B4C5D6E7F80912A3B4C5D6E7F8"),
    ]


def test_the_orchestration_sample_gives_the_localagent_certificates() -> None:
    path = "C:\\ProgramData\\SF\\ORCH1\\Fabric\\work\\Applications\\LocalAgentType_App2\\OrchestrationServicePkg.Package.Current.xml"
    settings, problems = parse_package((SAMPLES / "OrchestrationServicePkg.Package.Current.xml").read_bytes(), path)
    assert problems == []
    assert {s.role: s.thumbprint for s in settings} == {
        "Orchestrator": "5E6F708192A3B4C5D6E7F80912A3B4C5D6E7F809",
        "ServiceFabricClient": "6F708192A3B4C5D6E7F80912A3B4C5D6E7F8091A",
        "ServiceFabric": "708192A3B4C5D6E7F80912A3B4C5D6E7F8091A2B",
    }


def test_bad_files_are_problems_naming_the_file() -> None:
    _, problems = parse_package(b"<ServicePackage", AXSF)
    assert problems[0].reason is Reason.PARSE_ERROR and AXSF in problems[0].message
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><ServicePackage xmlns="http://schemas.microsoft.com/2011/01/fabric"/>'
    _, problems = parse_package(bomb, AXSF)
    assert problems and "not valid XML" in problems[0].message
    bad = (SAMPLES / "AXSF.Package.Current.xml").read_bytes().replace(b"1A2B3C4D5E6F", b"ZZ2B3C4D5E6F")
    settings, problems = parse_package(bad, AXSF)
    assert len(settings) == 3 and "DataAccess/DataEncryptionCertificateThumbprint" in problems[0].message
    out = json.dumps({"v": 1, "f": [{"p": AXSF, "n": 5_000_000}, {"p": AXSF, "d": "!!"}]}).encode()
    _, problems = interpret_packages("AOS1", out)
    assert [p.message for p in problems] == [
        f"AOS1 {AXSF}: 5000000 bytes, over 1048576",
        f"AOS1 {AXSF}: the content is not base64",
    ]
    _, problems = interpret_packages("AOS1", b"Get-ChildItem : Access denied")
    assert "not JSON" in problems[0].message


def test_the_command_fits_and_reads_only_on_the_node() -> None:
    script = decode_encoded_command(PACKAGES_COMMAND[1][-1])
    assert script is not None and "C:\\ProgramData\\SF\\*\\Fabric\\work\\Applications" in script
    assert "[xml]" not in script  # the XML is parsed by certmon (defusedxml), never on the node


def test_a_simulated_aos_node_reports_what_its_package_runs_with(
    shared_lab: Lab, make_collector: Callable[..., WinRMCollector]
) -> None:
    without = make_collector().collect("AOS1", Deadline.after(30))
    assert [r for r in without.references if r.role == "DataEncryption"] == []
    observation = make_collector(package_settings=True).collect("AOS1", Deadline.after(30))
    found = {r.role: r for r in observation.references if r.source == "winrm" and "Package" in r.reference}
    assert set(found) == {"DataEncryption", "DataSigning", "SessionAuthentication"}
    assert found["DataEncryption"].thumbprint == shared_lab.cert("DataEncryption", "old").thumbprint
    assert found["DataEncryption"].node == "AOS1"
    assert found["DataEncryption"].reference == f"AOS1 {AXSF} DataAccess/DataEncryptionCertificateThumbprint"
    orchestrator = make_collector(package_settings=True).collect("ORCH1", Deadline.after(30))
    roles = {r.role for r in orchestrator.references if "Package" in r.reference}
    assert roles == {"Orchestrator", "ServiceFabricClient", "ServiceFabric"}


def test_the_node_answer_is_base64_of_the_file(shared_lab: Lab) -> None:
    from simulator.winrm import packagefiles
    from simulator.winrm.nodefile import read_node_facts

    folder = shared_lab.certs_dir / "AOS1"
    script = decode_encoded_command(PACKAGES_COMMAND[1][-1])
    assert script is not None
    answer = json.loads(packagefiles.run(script, folder, read_node_facts(folder)) or "")
    (entry,) = answer["f"]
    assert entry["p"] == AXSF
    assert (
        base64.b64decode(entry["d"]) == (shared_lab.root / "node-sf" / "AOS1" / "AXSF.Package.Current.xml").read_bytes()
    )
