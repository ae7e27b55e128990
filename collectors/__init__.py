"""Sources of certificates and references to them, the certificate parser and the shared domain model.

Dependency direction: collectors imports nothing of certmon outside itself (usable as a library);
remediations, daemon and simulator import it. Shared leaves: `base` (the Collector contract),
`errors` (the closed set of reasons), `model` (observations, findings, snapshots), `certificate`.
One module or subpackage per source (`tls/`, `adfs/`, `winrm/`, `servicefabric/`, `sql/`, ...).
"""
