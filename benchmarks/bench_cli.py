"""Command-line start-up and `certmon inspect`, measured side by side in one run.

1. `certmon inspect --format json` on 1,000 PEM files versus a bare Python process that reads the
   same files with cryptography and prints the same fields as JSON (target <= 2x).
2. `certmon --version` wall time (target <= 0.15 s).
3. The first cycle over 200 PFX files (RSA-2048 keys, AES-256 and 3DES): certmon's
   certificates-only opening versus cryptography's `load_pkcs12` (target <= 2 s).

Run: .venv/bin/python benchmarks/bench_cli.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from collectors import certfiles
from collectors import certificate as model
from simulator.pki import make_certificate, pfx_bytes

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 27, tzinfo=UTC)

# What a bare program does to print the same fields as `certmon inspect --format json`.
BARE = r"""
import hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
out = []
for name in sys.argv[1:]:
    with open(name, "rb") as f:
        data = f.read()
    for c in x509.load_pem_x509_certificates(data):
        der = c.public_bytes(__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER)
        key = c.public_key()
        try:
            c.verify_directly_issued_by(c)
            self_signed = True
        except Exception:
            self_signed = False
        try:
            sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = sans.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            dns = []
        cn = c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        out.append({
            "path": name, "thumbprint": hashlib.sha1(der).hexdigest().upper(),
            "sha256": hashlib.sha256(der).hexdigest().upper(), "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(), "subject_cn": cn[0].value if cn else "",
            "dns_names": dns, "serial": format(c.serial_number, "X"),
            "not_before": c.not_valid_before_utc.isoformat(), "not_after": c.not_valid_after_utc.isoformat(),
            "key_algorithm": "EC " + key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else "RSA",
            "key_size": key.key_size if isinstance(key, rsa.RSAPublicKey) else key.curve.key_size,
            "signature_algorithm": c.signature_algorithm_oid._name, "self_signed": self_signed,
        })
json.dump(out, sys.stdout, indent=1)
"""


def _wall(command: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_inspect(count: int = 1000, rounds: int = 5) -> dict[str, float]:
    """certmon inspect / bare Python on `count` PEM files; print and return the figures."""
    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for i in range(count):
            issued = make_certificate(
                f"cert{i}.bench.lab",
                not_before=NOW,
                not_after=NOW + timedelta(days=30 + i),
                key=key,
                dns_names=(f"cert{i}.bench.lab",),
            )
            path = Path(folder) / f"cert{i}.pem"
            path.write_bytes(issued.pem)
            files.append(str(path))
        ours_cmd = [sys.executable, "-m", "daemon", "inspect", "--format", "json", *files]
        bare_cmd = [sys.executable, "-c", BARE, *files]
        pairs = [(_wall(ours_cmd, 1), _wall(bare_cmd, 1)) for _ in range(rounds)]
    ours = statistics.median(p[0] for p in pairs)
    bare = statistics.median(p[1] for p in pairs)
    version = _wall([sys.executable, "-m", "daemon", "--version"], rounds * 2)
    python = _wall([sys.executable, "-c", "pass"], rounds * 2)
    print(f"certmon inspect on {count} PEM files (JSON, every field)")
    print(f"  certmon inspect          {ours:8.2f} s")
    print(f"  bare Python, same fields {bare:8.2f} s")
    print(f"  ratio certmon / bare     {ours / bare:8.2f}   (target <= 2)")
    print(f"certmon --version          {version:8.3f} s   (target <= 0.15; bare `python -c pass` {python:.3f} s)")
    return {"ratio": ours / bare, "ours_s": ours, "bare_s": bare, "version_s": version}


def bench_pfx(count: int = 200) -> dict[str, float]:
    """First cycle over `count` PFX files: certmon versus cryptography's load_pkcs12; print and return."""
    keys = [rsa.generate_private_key(65537, 2048) for _ in range(8)]
    blobs = []
    for i in range(count):
        leaf = make_certificate(
            f"pfx{i}.bench.lab", not_before=NOW, not_after=NOW + timedelta(days=400), key=keys[i % len(keys)]
        )
        blobs.append(pfx_bytes(leaf, b"bench-password", legacy=i % 2 == 1))
    started = time.perf_counter()
    for data in blobs:
        pkcs12.load_pkcs12(data, b"bench-password")
    bare = time.perf_counter() - started
    model._CACHE.clear()
    certfiles._PKCS12_CACHE.clear()
    started = time.perf_counter()
    for i, data in enumerate(blobs):
        certfiles.load_certificates(data, f"pfx{i}.pfx", b"bench-password")
    ours = time.perf_counter() - started
    print(f"first cycle over {count} PFX files (RSA-2048; half AES-256, half 3DES)")
    print(f"  certmon (certificates only)    {ours:8.2f} s   (target <= 2)")
    print(f"  cryptography load_pkcs12       {bare:8.2f} s")
    print(f"  ratio certmon / load_pkcs12    {ours / bare:8.2f}")
    return {"ours_s": ours, "bare_s": bare, "ratio": ours / bare}


if __name__ == "__main__":
    bench_inspect()
    bench_pfx()
