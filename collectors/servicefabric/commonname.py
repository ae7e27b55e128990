"""Rotation of a cluster declared by common name: no thumbprint staging, a new certificate and issuer pinning.

With `ClusterCertificateCommonNames`/`ServerCertificateCommonNames` the configuration names a
subject, not a thumbprint. Microsoft's X.509 article: "When you use a certificate common name
instead of a thumbprint, certificate rollover doesn't require a cluster configuration upgrade";
the new certificate (same common name) is installed on every node, and its issuer must be
allowed: by `CertificateIssuerThumbprint` (a list that must intersect the old one) or by an
issuer store (`...IssuerStores`, issuer common name and store). Service Fabric then uses the
valid certificate with that common name that expires last (UNVERIFIED here beyond Microsoft's
documentation: certmon has no cluster to watch it choose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collectors.certificate import Certificate
from collectors.clusterconfig import ClusterConfig

SERVER_KINDS = ("cluster", "server")


@dataclass(frozen=True, slots=True)
class CommonNameCheck:
    """Whether a new certificate fits the common-name declaration: True, False, or None (unknown), and why."""

    value: bool | None
    lines: tuple[str, ...]


def issuer_allowed(config: ClusterConfig, kind: str, cert: Certificate, known: Mapping[str, Certificate]) -> str:
    """ "" when the certificate's issuer is allowed for `kind`, else the reason; `known` maps thumbprint -> cert.

    Pinning by issuer thumbprint needs the issuer certificate itself (its thumbprint is not in the
    leaf): it is looked up among the certificates certmon has seen with the leaf's issuer as subject.
    """
    declared = [cn for cn in config.common_names if cn.kind == kind and cn.common_name == cert.subject_cn]
    pinned = {tp for cn in declared for tp in cn.issuer_thumbprints}
    stores = [s for s in config.issuer_stores if s.kind == kind]
    if not pinned and not stores:
        return ""  # no pinning declared: any chain the nodes trust
    if stores and any(not s.issuer_common_name or s.issuer_common_name == cert.issuer_cn for s in stores):
        return ""
    issuers = [tp for tp, c in known.items() if c.subject == cert.issuer]
    if pinned and set(issuers) & pinned:
        return ""
    if pinned and not issuers:
        return (
            f"its issuer {cert.issuer_cn or cert.issuer} is pinned by thumbprint ({', '.join(sorted(pinned))}) but "
            "the issuer certificate is not in any inventory certmon reads, so the pinning cannot be checked"
        )
    allowed = [f"issuer thumbprints {', '.join(sorted(pinned))}"] if pinned else []
    allowed += [f"issuer store {s.issuer_common_name or '(any)'} in {s.store_names}" for s in stores]
    return f"its issuer {cert.issuer_cn or cert.issuer} is not allowed ({'; '.join(allowed)})"


def common_name_staging(
    config: ClusterConfig, new_thumbprints: Iterable[str], known: Mapping[str, Certificate], where: str
) -> CommonNameCheck:
    """Does each new Service Fabric certificate carry a declared common name and an allowed issuer?"""
    names = {cn.common_name for cn in config.common_names if cn.kind in SERVER_KINDS}
    lines: list[str] = []
    value: bool | None = True
    for thumbprint in new_thumbprints:
        cert = known.get(thumbprint)
        if cert is None:
            lines.append(f"{where}: the new certificate {thumbprint} is not in any inventory certmon reads")
            value = None if value is not False else value
            continue
        if cert.subject_cn not in names:
            lines.append(
                f"{where}: the new certificate {thumbprint} has common name {cert.subject_cn!r}, which the "
                f"configuration does not declare ({', '.join(sorted(names))}): a configuration upgrade adding "
                "it is needed first"
            )
            value = False
            continue
        problems = [
            f"{kind}: {reason}"
            for kind in SERVER_KINDS
            if any(cn.kind == kind for cn in config.common_names)
            for reason in [issuer_allowed(config, kind, cert, known)]
            if reason
        ]
        if problems:
            lines += [f"{where}: the new certificate {thumbprint} ({cert.subject_cn}): {p}" for p in problems]
            unknown = all("cannot be checked" in p for p in problems)
            value = False if not unknown else (None if value is not False else value)
        else:
            lines.append(f"{where}: the new certificate {thumbprint} carries {cert.subject_cn} from an allowed issuer")
    return CommonNameCheck(value, tuple(lines))
