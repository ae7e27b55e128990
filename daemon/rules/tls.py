"""Findings about TLS endpoints: nodes behind one name that disagree, chains clients reject, nodes that fail."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.model import Finding, Severity
from collectors.tls.collector import TlsEndpointFacts, host_port
from daemon.context import Context

# Expired and not-yet-valid certificates already have their own findings (cert-expired ...).
_DATE_ERRORS = ("expired", "not_yet_valid")


def endpoint_consistency_findings(ctx: Context) -> Iterable[Finding]:
    """One name whose addresses present different certificates (a node missed a rotation)."""
    for target, facts in ctx.snapshot.facts("tls", TlsEndpointFacts):
        leaves = facts.leaves()
        if len(leaves) < 2:
            continue
        detail = "; ".join(f"{thumbprint} on {', '.join(addresses)}" for thumbprint, addresses in leaves.items())
        yield Finding(
            "cert-inconsistent-across-nodes",
            Severity.WARNING,
            f"{facts.host}:{facts.port} presents different certificates on its nodes: {detail}",
            source="tls",
            target=target,
            step="certs-installed",
        )


def tls_chain_findings(ctx: Context) -> Iterable[Finding]:
    """Chains that clients will reject: wrong name, self-signed, untrusted or otherwise invalid."""
    for target, facts in ctx.snapshot.facts("tls", TlsEndpointFacts):
        for probe in facts.probes:
            if probe.chain_valid is not False or probe.chain_error in _DATE_ERRORS or probe.leaf is None:
                continue
            yield Finding(
                "tls-chain-invalid",
                Severity.WARNING,
                f"{host_port(probe.address, facts.port)} ({target}) presents a certificate that does not validate "
                f"for {facts.server_name}: {probe.chain_error}: {probe.chain_message}",
                role=next(iter(ctx.roles.get(probe.leaf.thumbprint, ())), ""),
                thumbprint=probe.leaf.thumbprint,
                node=probe.address,
                source="tls",
                target=target,
            )


def tls_probe_failed_findings(ctx: Context) -> Iterable[Finding]:
    """Addresses that fail while others behind the same name answer (a whole failing target is source-down)."""
    for result in ctx.snapshot.of_source("tls"):
        facts = result.observation.facts if result.observation is not None else None
        if not result.health.ok or not isinstance(facts, TlsEndpointFacts):
            continue
        for probe in facts.probes:
            if probe.success:
                continue
            yield Finding(
                "tls-probe-failed",
                Severity.WARNING,
                f"{host_port(probe.address, facts.port)} ({result.target}) fails: {probe.reason}: {probe.message}",
                node=probe.address,
                source="tls",
                target=result.target,
            )
