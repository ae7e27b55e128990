"""The running packages' *.Package.Current.xml files on a simulated node, as certmon's package script lists them.

node.json: `{"sf_packages": {"C:\\\\ProgramData\\\\SF\\\\AOS1\\\\Fabric\\\\work\\\\Applications\\\\AXSFType_App1\\\\
AXSF.Package.Current.xml": "../../node-sf/AOS1/AXSF.Package.Current.xml"}}`: where Service Fabric keeps each
file on the node and the lab file standing for it. The script's `Get-ChildItem` wildcards are matched
case-insensitively, as on NTFS; the answer is what `ConvertTo-Json -Compress` prints for it.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from pathlib import Path
from typing import Any

from collectors.winrm.command import PROLOGUE
from collectors.winrm.packages import DATA_ROOT, MAX_FILE_BYTES, MAX_FILES, PACKAGES, PACKAGES_SCRIPT

SCRIPT = "\n".join((*PROLOGUE, PACKAGES_SCRIPT, "exit 0"))


def run(script: str, node_root: Path, facts: dict[str, Any]) -> str | None:
    """The package script's output, or None when `script` is not that script."""
    if script != SCRIPT:
        return None
    files = {str(k): str(v) for k, v in dict(facts.get("sf_packages") or {}).items()}
    found: list[dict[str, Any]] = []
    for pattern in PACKAGES:
        wildcard = f"{DATA_ROOT}\\*\\Fabric\\work\\Applications\\{pattern}".lower()
        for path in sorted(files, key=str.upper):
            if len(found) >= MAX_FILES:
                break
            if not fnmatch.fnmatchcase(path.lower(), wildcard) or path.count("\\") != wildcard.count("\\"):
                continue
            data = (node_root / files[path]).read_bytes()
            entry: dict[str, Any] = {"p": path}
            if len(data) <= MAX_FILE_BYTES:
                entry["d"] = base64.b64encode(data).decode("ascii")
            else:
                entry["n"] = len(data)
            found.append(entry)
    return json.dumps({"v": 1, "f": found}, separators=(",", ":")) + "\r\n"
