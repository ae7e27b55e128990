"""The thumbprints the running AXSF, LocalAgent and reporting packages carry in their settings, read on the node.

Service Fabric writes each activated service package's digest to its application's work folder:
`<data root>\\<node>\\Fabric\\work\\Applications\\<AppType>_App<N>\\<Service>Pkg.Package.Current.xml`,
a `ServicePackage` document (namespace http://schemas.microsoft.com/2011/01/fabric) whose
`DigestedConfigPackage/ConfigOverride/Settings/Section[@Name]/Parameter[@Name,@Value]` hold the
settings the package runs with (Service Fabric's ServiceModel schema, documented on Microsoft Learn
as "Service Fabric service model XML schema elements"). The files, sections and parameters read here
are the ones the public D365FOLBDAdmin tooling (Get-D365LBDConfig) reads on D365 F&O on-premises
nodes under `C:\\ProgramData\\SF` (docs/thumbprint-sources.md).

With `sources.winrm.package_settings: true` the winrm source runs one more small command per node
and cycle (`PACKAGES_SCRIPT`); it sends the files back as base64 (at most `MAX_FILES`, each at most
`MAX_FILE_BYTES`) and certmon parses them here with defusedxml, never on the node.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from collectors.certificate import normalize_thumbprint
from collectors.errors import Reason, ThumbprintError
from collectors.model import CertReference, Generation, Problem, Snapshot
from collectors.winrm.nodefiles import command_line

FABRIC_NS = "{http://schemas.microsoft.com/2011/01/fabric}"
#: how a package setting's reference text ends its file name (package_thumbprints_by_role finds them by it)
PACKAGE_FILE_MARK = ".Package.Current.xml "
DATA_ROOT = "C:\\ProgramData\\SF"
MAX_FILES = 12
MAX_FILE_BYTES = 1024 * 1024
#: file pattern under <data root>\*\Fabric\work\Applications -> {(section, parameter): role}
PACKAGES: dict[str, dict[tuple[str, str], str]] = {
    "AXSFType_App*\\AXSF.Package.Current.xml": {
        ("DataAccess", "DataEncryptionCertificateThumbprint"): "DataEncryption",
        ("DataAccess", "DataSigningCertificateThumbprint"): "DataSigning",
        ("Infrastructure", "SessionAuthenticationCertificateThumbprint"): "SessionAuthentication",
        ("SmbStorage", "SharedAccessThumbprint"): "SharedAccessSMB",
    },
    "LocalAgentType_App*\\OrchestrationServicePkg.Package.Current.xml": {
        ("AAD", "ServicePrincipalThumbprint"): "Orchestrator",
        ("ServiceFabric", "ClientCertificate"): "ServiceFabricClient",
        ("ServiceFabric", "ServerCertificate"): "ServiceFabric",
    },
    "ReportingService_*\\ReportingBootstrapperPkg.Package.Current.xml": {
        ("ReportingServices", "ReportingClientCertificateThumbprint"): "ReportingService",
    },
}
_PATTERNS = ",".join("'" + p + "'" for p in PACKAGES)
PACKAGES_SCRIPT = "\n".join(
    (
        "$f = @()",
        f"foreach ($q in @({_PATTERNS})) {{",
        f"  $w = Join-Path '{DATA_ROOT}\\*\\Fabric\\work\\Applications' $q",
        "  foreach ($i in @(Get-ChildItem -Path $w -ErrorAction SilentlyContinue)) {",
        f"    if ($f.Count -ge {MAX_FILES}) {{ break }}",
        f"    if ($i.Length -le {MAX_FILE_BYTES}) {{ $f += @{{p = $i.FullName; d = "
        "[Convert]::ToBase64String([IO.File]::ReadAllBytes($i.FullName))} }",
        "    else { $f += @{p = $i.FullName; n = $i.Length} }",
        "  }",
        "}",
        "ConvertTo-Json -Compress -Depth 3 @{v = 1; f = @($f)}",
    )
)

#: powershell.exe and its arguments (stop on the first error, like every command certmon sends)
PACKAGES_COMMAND = command_line(PACKAGES_SCRIPT)


@dataclass(frozen=True, slots=True)
class PackageSetting:
    """One thumbprint setting of a running package on a node."""

    path: str
    section: str
    parameter: str
    role: str
    thumbprint: str


def _settings_table(path: str) -> dict[tuple[str, str], str] | None:
    name = path.rsplit("\\", 1)[-1].lower()
    for pattern, table in PACKAGES.items():
        if pattern.rsplit("\\", 1)[-1].lower() == name:
            return {(s.lower(), p.lower()): role for (s, p), role in table.items()}
    return None


def parse_package(data: bytes, path: str) -> tuple[list[PackageSetting], list[Problem]]:
    """The known thumbprint settings of one *.Package.Current.xml (empty values are 'not set')."""
    table = _settings_table(path)
    if table is None:
        return [], [Problem(Reason.BAD_OUTPUT, f"{path}: not a package file certmon reads")]
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as err:
        return [], [Problem(Reason.PARSE_ERROR, f"{path}: not valid XML ({err})")]
    if root.tag != f"{FABRIC_NS}ServicePackage":
        return [], [Problem(Reason.PARSE_ERROR, f"{path}: the root element is {root.tag}, not ServicePackage")]
    found: list[PackageSetting] = []
    problems: list[Problem] = []
    path_in = f"{FABRIC_NS}DigestedConfigPackage/{FABRIC_NS}ConfigOverride/{FABRIC_NS}Settings/{FABRIC_NS}Section"
    for section in root.iterfind(path_in):
        section_name = section.get("Name", "")
        for parameter in section.iterfind(f"{FABRIC_NS}Parameter"):
            name = parameter.get("Name", "")
            role = table.get((section_name.lower(), name.lower()))
            value = (parameter.get("Value") or "").strip()
            if role is None or not value or parameter.get("IsEncrypted", "").lower() == "true":
                continue
            try:
                thumbprint = normalize_thumbprint(value)
            except ThumbprintError as err:
                problems.append(Problem(Reason.PARSE_ERROR, f"{path} {section_name}/{name}: {err}"))
                continue
            found.append(PackageSetting(path, section_name, name, role, thumbprint))
    return found, problems


def interpret_packages(node: str, stdout: bytes) -> tuple[list[PackageSetting], list[Problem]]:
    """What PACKAGES_SCRIPT printed: every package file's settings, and problems for what could not be read."""
    try:
        document: Any = json.loads(stdout.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as err:
        return [], [Problem(Reason.BAD_OUTPUT, f"{node}: package settings output is not JSON ({err})")]
    files = document.get("f") if isinstance(document, dict) and document.get("v") == 1 else None
    if not isinstance(files, list) or len(files) > MAX_FILES:
        return [], [Problem(Reason.BAD_OUTPUT, f"{node}: package settings output has no file list (v 1)")]
    settings: list[PackageSetting] = []
    problems: list[Problem] = []
    for item in files:
        path = item.get("p") if isinstance(item, dict) else None
        if not isinstance(path, str):
            problems.append(Problem(Reason.BAD_OUTPUT, f"{node}: a package file entry without a path"))
            continue
        if "n" in item:
            problems.append(Problem(Reason.BAD_OUTPUT, f"{node} {path}: {item['n']} bytes, over {MAX_FILE_BYTES}"))
            continue
        try:
            data = base64.b64decode(str(item.get("d", "")), validate=True)
        except (binascii.Error, ValueError):
            problems.append(Problem(Reason.BAD_OUTPUT, f"{node} {path}: the content is not base64"))
            continue
        found, trouble = parse_package(data, f"{node} {path}")
        settings += found
        problems += trouble
    return settings, problems


def package_references(node: str, settings: list[PackageSetting], source: str) -> tuple[CertReference, ...]:
    """One reference per setting: the package runs with that certificate."""
    return tuple(
        CertReference(s.role, s.thumbprint, Generation.NEW, f"{s.path} {s.section}/{s.parameter}", source, node)
        for s in settings
    )


def package_thumbprints_by_role(snapshot: Snapshot, source: str = "winrm") -> dict[str, set[str]]:
    """Every thumbprint a running package on any node carries, by role (empty when not read)."""
    found: dict[str, set[str]] = {}
    for result in snapshot.of_source(source):
        references = result.observation.references if result.observation is not None else ()
        for reference in references:
            if PACKAGE_FILE_MARK.lower() in reference.reference.lower() and reference.thumbprint:
                found.setdefault(reference.role, set()).add(reference.thumbprint)
    return found
