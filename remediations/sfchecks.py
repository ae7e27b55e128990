"""Preconditions the Service Fabric remediations share: the staged file, the rotation, nodes, versions.

Every decision comes from `collectors.servicefabric.evidence` (the functions the findings use);
this module only turns the answers into `Check`s and reads ClusterConfig.json for planning.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from collectors.clusterconfig import SF_CLIENT_ROLE, SF_ROLE, ClusterConfig, parse_cluster_config
from collectors.errors import CollectorError
from collectors.files import parse_json, read_bytes
from collectors.servicefabric.evidence import (
    FILE_SOURCE,
    Evidence,
    SfRotation,
    gateway_facts,
    leftover_secondaries,
    rotation_stage,
    sf_rotation,
    slot_states,
)
from remediations.base import Check, RemediationContext, RemediationError

NOT_BY_THUMBPRINT = (
    "the cluster certificate is declared by common name: thumbprint staging does not apply; install the new "
    "certificate (same common name, same issuer) on every node and Service Fabric uses the one that expires last"
)


def check(name: str, evidence: Evidence) -> Check:
    """A precondition from an evidence answer; unknown fails."""
    return Check(name, evidence.true, evidence.detail, evidence.value is not None)


def file_config(ctx: RemediationContext) -> ClusterConfig | None:
    """The staged ClusterConfig.json as last collected successfully, or None."""
    for result in ctx.snapshot.of_source(FILE_SOURCE):
        facts = result.observation.facts if result.observation is not None else None
        if result.health.ok and isinstance(facts, ClusterConfig):
            return facts
    return None


def file_checks(ctx: RemediationContext) -> tuple[list[Check], ClusterConfig | None]:
    """ClusterConfig.json configured, read, and declared by thumbprint."""
    path = ctx.file(FILE_SOURCE)
    checks = [
        Check(
            "ClusterConfig.json configured",
            path is not None,
            str(path) if path is not None else "sources.clusterconfig.path is not set (the file operators stage)",
        )
    ]
    results = ctx.snapshot.of_source(FILE_SOURCE)
    failing = "; ".join(f"{r.target}: {r.health.reason}: {r.health.message}" for r in results if not r.health.ok)
    config = file_config(ctx)
    if not results:
        checks.append(Check("ClusterConfig.json read", False, "the clusterconfig source was not collected", False))
    else:
        checks.append(
            Check(
                "ClusterConfig.json read",
                not failing,
                failing or f"version {config.version if config else '?'}",
                not failing,
            )
        )
    if config is not None:
        by_thumbprint = bool(config.certificates) and not config.by_common_name
        checks.append(
            Check("certificates declared by thumbprint", by_thumbprint, "yes" if by_thumbprint else NOT_BY_THUMBPRINT)
        )
    return checks, config


def rotation_check(ctx: RemediationContext, config: ClusterConfig | None) -> tuple[Check, SfRotation]:
    """The rotation's thumbprints, from the ConfigTemplate pair (and the configuration for the old client)."""
    rotation = sf_rotation(ctx.snapshot, config)
    if not rotation.known:
        return Check("rotation thumbprints known", False, rotation.problem, False), rotation
    detail = (
        f"{SF_ROLE} {rotation.old_server or '?'} -> {rotation.new_server}, {SF_CLIENT_ROLE} admin "
        f"{rotation.old_client} -> {rotation.new_client} (from {rotation.basis})"
    )
    return Check("rotation thumbprints known", True, detail), rotation


def secondary_check(ctx: RemediationContext, config: ClusterConfig, rotation: SfRotation) -> Check:
    """No ThumbprintSecondary left from a previous rotation, in the file or in the running configuration."""
    leftovers = [f"ClusterConfig.json {item}" for item in leftover_secondaries(config, rotation)]
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is not None:
        leftovers += [f"the running configuration {item}" for item in leftover_secondaries(facts.config, rotation)]
    if leftovers:
        return Check(
            "no secondary left from a previous rotation",
            False,
            "; ".join(leftovers) + ": Service Fabric refuses to upgrade from two different certificates to two "
            "different certificates; remove it (sf-cleanup-old-certs) and let that upgrade finish first",
        )
    return Check("no secondary left from a previous rotation", True, "no ThumbprintSecondary from an earlier rotation")


def matches_running_check(ctx: RemediationContext, config: ClusterConfig, rotation: SfRotation) -> Check:
    """The staged file is the running configuration (before staging) or one version ahead of it (staged)."""
    name = "ClusterConfig.json matches the running configuration"
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is None:
        return Check(name, False, "the running configuration is unknown (the gateway was not read)")
    running, stage = facts.config, rotation_stage(config, rotation)
    if stage == "before" and config.version != running.version:
        return Check(
            name,
            False,
            f"ClusterConfig.json is version {config.version} but the cluster runs {running.version}: export the "
            "running configuration (Get-ServiceFabricClusterConfiguration) and stage from it",
        )
    if stage == "mixed":
        slots = "; ".join(slot_states(config, rotation))
        detail = f"ClusterConfig.json {config.version} is partly staged: {slots}; fix it by hand first"
        return Check(name, False, detail)
    return Check(name, True, f"ClusterConfig.json {config.version} ({stage}), running {running.version}")


def node_certificates_check(ctx: RemediationContext, config: ClusterConfig, thumbprints: Iterable[str]) -> Check:
    """The new certificates, with private keys, on every cluster node whose store certmon reads."""
    name = "new certificates on every node"
    wanted = list(dict.fromkeys(thumbprints))
    nodes = {n.name.upper(): n.name for n in config.nodes}
    held: dict[str, dict[str, bool | None]] = {}
    for obs in ctx.snapshot.certificates():
        if obs.node.upper() in nodes:
            node = held.setdefault(obs.node.upper(), {})
            node[obs.thumbprint] = node.get(obs.thumbprint) or obs.has_private_key
    if not held:
        return Check(name, True, "no node inventory is collected; not checked (where node data is available)")
    problems = []
    for key in sorted(held):
        for thumbprint in wanted:
            key_state = held[key].get(thumbprint, False if thumbprint not in held[key] else None)
            if thumbprint not in held[key]:
                problems.append(f"{nodes[key]} lacks {thumbprint}")
            elif key_state is not True:
                problems.append(f"{nodes[key]} holds {thumbprint} without its private key")
    unchecked = sorted(set(nodes) - set(held))
    note = f"; {len(unchecked)} node(s) without inventory not checked" if unchecked else ""
    if problems:
        return Check(name, False, "; ".join(problems) + note)
    return Check(name, True, f"{', '.join(wanted)} with private keys on {len(held)} node(s){note}")


def read_config_file(path: Path) -> tuple[bytes, ClusterConfig]:
    """The file's bytes and its interpretation, read now; RemediationError naming the file."""
    try:
        data = read_bytes(path)
        return data, parse_cluster_config(parse_json(data, str(path)), str(path))
    except CollectorError as err:
        raise RemediationError(f"cannot read {err}") from err
