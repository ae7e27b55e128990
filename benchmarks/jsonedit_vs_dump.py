"""Targeted JSON edit vs load-and-dump on a large ClusterConfig.json: time and bytes changed.

Run: python benchmarks/jsonedit_vs_dump.py [NODES]
Prints, side by side in one run, the time per edit of `JsonEditor.set` (two thumbprints) and
of `json.loads` + `json.dumps(indent=4)` on the same CRLF document, their ratio, and how many
lines each one changes (what an operator's diff would show).
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from remediations.jsonedit import JsonEditor

OLD, NEW = "A" * 40, "B" * 40


def document(nodes: int) -> bytes:
    """A ClusterConfig.json-like document with `nodes` nodes, tab-indented, CRLF, BOM."""
    config = {
        "name": "D365FOCluster",
        "clusterConfigurationVersion": "2.0.1",
        "nodes": [
            {"nodeName": f"AOS{i}", "iPAddress": f"10.0.{i // 250}.{i % 250}", "nodeTypeRef": "AOSNodeType"}
            for i in range(nodes)
        ],
        "properties": {
            "security": {
                "CertificateInformation": {
                    "ClusterCertificate": {"Thumbprint": OLD, "X509StoreName": "My"},
                    "ServerCertificate": {"Thumbprint": OLD, "X509StoreName": "My"},
                }
            }
        },
    }
    text = json.dumps(config, indent="\t").replace("\n", "\r\n")
    return b"\xef\xbb\xbf" + text.encode()


def per_call(action: Callable[[], bytes], seconds: float = 1.0) -> float:
    """Seconds per call, measured over about `seconds`."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        action()
        count += 1
    return (time.perf_counter() - started) / count


def main() -> None:
    """Measure and print."""
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    data = document(nodes)
    base = ("properties", "security", "CertificateInformation")

    def targeted() -> bytes:
        editor = JsonEditor(data)
        editor.set((*base, "ClusterCertificate", "Thumbprint"), NEW)
        editor.set((*base, "ServerCertificate", "Thumbprint"), NEW)
        return editor.to_bytes()

    def load_and_dump() -> bytes:
        loaded = json.loads(data.decode("utf-8-sig"))
        for kind in ("ClusterCertificate", "ServerCertificate"):
            loaded["properties"]["security"]["CertificateInformation"][kind]["Thumbprint"] = NEW
        return json.dumps(loaded, indent=4).encode()

    def changed_lines(after: bytes) -> int:
        before_lines = data.decode("utf-8-sig").splitlines(keepends=True)
        after_lines = after.decode("utf-8-sig").splitlines(keepends=True)
        diff = difflib.unified_diff(before_lines, after_lines, n=0)
        return sum(1 for line in diff if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))

    t_targeted, t_dump = per_call(targeted), per_call(load_and_dump)
    print(f"document: {nodes} nodes, {len(data)} bytes, CRLF, tabs, UTF-8 BOM")
    print(f"targeted edit : {t_targeted * 1e3:8.3f} ms per edit, {changed_lines(targeted()):6d} lines changed")
    print(f"load and dump : {t_dump * 1e3:8.3f} ms per edit, {changed_lines(load_and_dump()):6d} lines changed")
    print(f"time ratio targeted / load-and-dump: {t_targeted / t_dump:.1f}")


if __name__ == "__main__":
    main()
