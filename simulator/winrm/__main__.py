"""Run simulated Windows nodes in their own process: `python -m simulator.winrm --root DIR --users FILE`.

Every sub-folder of DIR is a node. When the listeners are up, one JSON line with the addresses is
printed; then each line on stdin is a command: `counters` prints every node's counters as one JSON
line, `reset` zeroes them, `quit` (or end of input) stops.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.winrm.node import SimulatedFleet


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin says quit."""
    parser = argparse.ArgumentParser(prog="python -m simulator.winrm", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="folder with one sub-folder per node")
    parser.add_argument("--users", type=Path, required=True, help="NTLM user file (DOMAIN:user:password lines)")
    parser.add_argument("--pfx-password-file", type=Path, help="password of the PFX files in the node folders")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every HTTP request")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    password = None
    if args.pfx_password_file is not None:
        password = args.pfx_password_file.read_text(encoding="utf-8").splitlines()[0].encode()
    with SimulatedFleet() as fleet:
        for folder in sorted(p for p in args.root.iterdir() if p.is_dir()):
            node = fleet.add(folder.name, folder, args.users, pfx_password=password, host=args.host)
            node.configure(latency=args.latency)
        print(json.dumps({"addresses": fleet.addresses()}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "counters":
                print(json.dumps(fleet.counters()), flush=True)
            elif command == "reset":
                fleet.reset_counters()
                print("{}", flush=True)
            elif command == "quit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
