"""What reading private-key ACLs adds to one node's inventory: output size and parse time, side by side.

The same 100-certificate inventory line (as the simulated node prints it), once without the `k`
objects, once with the five access rules the lab's key files carry, and once more with the members
of the local Administrators group those rules name (`g`), parsed with certmon's parse_inventory;
prints bytes per node and parse time per 1,000 certificates, and the ratios to the first.

Run: .venv/bin/python benchmarks/bench_keyacl.py [--certs 100] [--rounds 200]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from collectors.winrm.output import parse_inventory
from simulator.winrm.keyfiles import IMPORTED, NETWORK_SERVICE, READ, key_file

RULES = [*IMPORTED, [*NETWORK_SERVICE, READ, 0], ["S-1-5-21-1-2-3-1106", "CONTOSO\\svc-AXSF$", READ, 0]]
RULES.append(["S-1-5-21-1-2-3-1105", "CONTOSO\\svc-LocalAgent$", READ, 0])
GROUPS = {
    "S-1-5-32-544": [
        ["S-1-5-21-9-8-7-500", "AOS1\\Administrator", "User"],
        ["S-1-5-21-1-2-3-512", "CONTOSO\\Domain Admins", "Group"],
        ["S-1-5-21-1-2-3-1300", "CONTOSO\\svc-certmon", "User"],
    ]
}


def certificates(count: int) -> list[bytes]:
    """DER certificates with EC keys (quick to make; the parse cost does not depend on the key type)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    out = []
    for index in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cert{index}.contoso.lab")])
        builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        builder = builder.serial_number(index + 1).not_valid_before(now).not_valid_after(now + timedelta(days=90))
        out.append(builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER))
    return out


def inventory(ders: list[bytes], with_acl: bool, with_groups: bool = False) -> bytes:
    """One inventory line for LocalMachine\\My holding these certificates, all with CAPI keys."""
    items = []
    for index, der in enumerate(ders):
        item: dict[str, object] = {"d": base64.b64encode(der).decode(), "h": True, "t": 24, "p": "x"}
        if with_acl:
            item["k"] = {"f": key_file("AOS1", f"{index:040X}", 24), "a": RULES}
        items.append(item)
    document: dict[str, object] = {
        "v": 2,
        "stores": [{"s": "LocalMachine\\My", "c": items}],
        "sql": [],
        "n": len(items),
    }
    if with_groups:
        document["g"] = GROUPS
    return json.dumps(document, separators=(",", ":")).encode() + b"\r\n"


def per_1000(line: bytes, count: int, rounds: int) -> float:
    """Median seconds to parse the line, per 1,000 certificates."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        parse_inventory("AOS1", line)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / count


def main() -> int:
    """Measure both lines, interleaved, and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    ders = certificates(args.certs)
    plain, with_acl, with_groups = inventory(ders, False), inventory(ders, True), inventory(ders, True, True)
    base, acl, grouped = [], [], []
    for _ in range(4):  # interleaved, so load changes hit all three
        base.append(per_1000(plain, args.certs, args.rounds // 4))
        acl.append(per_1000(with_acl, args.certs, args.rounds // 4))
        grouped.append(per_1000(with_groups, args.certs, args.rounds // 4))
    b, a, g = statistics.median(base), statistics.median(acl), statistics.median(grouped)
    print(f"{args.certs} certificates per node, {len(RULES)} access rules per key, median of {args.rounds} parses")
    print(f"{'':>22} {'bytes/node':>11} {'parse ms/1000 certs':>20}")
    print(f"{'without key ACLs':>22} {len(plain):>11} {b * 1000:>20.2f}")
    print(f"{'with key ACLs':>22} {len(with_acl):>11} {a * 1000:>20.2f}")
    print(f"{'+ local groups':>22} {len(with_groups):>11} {g * 1000:>20.2f}")
    print(f"{'ratio key ACLs':>22} {len(with_acl) / len(plain):>11.2f} {a / b:>20.2f}")
    print(f"{'ratio + groups':>22} {len(with_groups) / len(plain):>11.2f} {g / b:>20.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
