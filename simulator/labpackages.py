"""The running packages' settings files on the lab's nodes (what `sources.winrm.package_settings` reads).

AOS nodes get `AXSFType_App1\\AXSF.Package.Current.xml`, Orchestrator nodes
`LocalAgentType_App1\\OrchestrationServicePkg.Package.Current.xml`, shaped like the samples in
tests/samples/servicefabric (a `ServicePackage` digest with the thumbprints in
`DigestedConfigPackage/ConfigOverride/Settings`). They carry the certificates the running
applications use in the lab: the previous generation, as the simulated cluster's application
parameters do (simulator/servicefabric.py lab_applications), until LCS settings are applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

if TYPE_CHECKING:
    from simulator.labmodel import Lab

_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\r\n<ServicePackage xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Name={name} ManifestVersion={version} '
    'RolloutVersion="1.0" xmlns="http://schemas.microsoft.com/2011/01/fabric">\r\n'
    '  <DigestedConfigPackage RolloutVersion="1.0">\r\n    <ConfigPackage Name="Config" Version={version} />\r\n'
    '    <ConfigOverride Name="Config">\r\n      <Settings>\r\n'
)
_TAIL = "      </Settings>\r\n    </ConfigOverride>\r\n  </DigestedConfigPackage>\r\n</ServicePackage>\r\n"
#: purpose -> (application folder, file, package name, version, {section: [(parameter, role)]})
PACKAGE_FILES = {
    "AOS": (
        "AXSFType_App1",
        "AXSF.Package.Current.xml",
        "AXSF",
        "1.0.0",
        {
            "DataAccess": [
                ("DataEncryptionCertificateThumbprint", "DataEncryption"),
                ("DataSigningCertificateThumbprint", "DataSigning"),
            ],
            "Infrastructure": [("SessionAuthenticationCertificateThumbprint", "SessionAuthentication")],
        },
    ),
    "Orchestrator": (
        "LocalAgentType_App1",
        "OrchestrationServicePkg.Package.Current.xml",
        "OrchestrationServicePkg",
        "3.2.0",
        {
            "AAD": [("ServicePrincipalThumbprint", "Orchestrator")],
            "ServiceFabric": [("ClientCertificate", "ServiceFabricClient"), ("ServerCertificate", "ServiceFabric")],
        },
    ),
}


def package_xml(lab: Lab, purpose: str, generation: str = "old") -> bytes:
    """The package settings document a node of this purpose runs with."""
    _, _, name, version, sections = PACKAGE_FILES[purpose]
    body = [_HEAD.format(name=quoteattr(name), version=quoteattr(version))]
    for section, parameters in sections.items():
        body.append(f"        <Section Name={quoteattr(section)}>\r\n")
        for parameter, role in parameters:
            value = lab.cert(role, generation).thumbprint
            body.append(f"          <Parameter Name={quoteattr(parameter)} Value={quoteattr(value)} />\r\n")
        body.append("        </Section>\r\n")
    body.append(_TAIL)
    return "".join(body).encode("utf-8")


def write_package_files(lab: Lab, generation: str = "old") -> None:
    """Write each AOS/Orchestrator node's package file and tell its node.json where it is."""
    from simulator.winrm.nodefile import update_node_facts

    for node in lab.nodes:
        if node.purpose not in PACKAGE_FILES:
            continue
        folder, file_name, *_ = PACKAGE_FILES[node.purpose]
        target = lab.root / "node-sf" / node.name / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(package_xml(lab, node.purpose, generation))
        windows = f"C:\\ProgramData\\SF\\{node.name}\\Fabric\\work\\Applications\\{folder}\\{file_name}"
        relative = Path("..", "..", "node-sf", node.name, file_name).as_posix()
        update_node_facts(lab.certs_dir / node.name, sf_packages={windows: relative})
