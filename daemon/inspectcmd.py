"""`certmon inspect`: the certificates in PEM, DER, PKCS#7 and PFX files.

Imports only the certificate model and the output helpers, so that inspecting files costs
little more than parsing them (no settings, scheduler, WinRM or simulator modules). Each
field is computed once per certificate (the model keeps it).
"""

from __future__ import annotations

import sys

from collectors.certfiles import load_certificate_file
from collectors.certificate import LoadedCertificate, iso_z, to_record
from collectors.errors import CertificateError
from collectors.secrets import read_secret_file
from daemon.output import dump_json, table

EXIT_OK, EXIT_FINDINGS = 0, 1


def inspect_files(files: list[str], password_file: str | None, fmt: str) -> int:
    """`certmon inspect`: every certificate in the files; bad files named on stderr, exit 1."""
    password = None
    if password_file:
        try:
            password = read_secret_file(password_file).encode()
        except OSError as err:
            print(f"{password_file}: cannot read password file: {err.strerror}", file=sys.stderr)
            return 2
    found: list[LoadedCertificate] = []
    failed = False
    for name in files:
        try:
            found.extend(load_certificate_file(name, password))
        except CertificateError as err:
            print(str(err), file=sys.stderr)
            failed = True
    if fmt == "json":
        dump_json([to_record(item) for item in found])
    else:
        table(
            ("PATH", "THUMBPRINT", "SUBJECT CN", "NOT AFTER", "KEY", "SIZE", "SELF-SIGNED", "PRIVATE KEY"),
            [
                (
                    i.source,
                    i.certificate.thumbprint,
                    i.certificate.subject_cn,
                    iso_z(i.certificate.not_after),
                    i.certificate.key_algorithm,
                    i.certificate.key_size,
                    i.certificate.self_signed,
                    {True: "yes", False: "no", None: "?"}[i.has_private_key],
                )
                for i in found
            ],
        )
    return EXIT_FINDINGS if failed else EXIT_OK
