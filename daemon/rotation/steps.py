"""The runbook steps of DESIGN section 2 whose evidence certmon reads today, each decided from that evidence."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from collectors.adfs import AdfsFacts
from collectors.adfs.rollover import superseded_of
from collectors.agentshare import SOURCE as SHARE_SOURCE
from collectors.clusterconfig import SF_CLIENT_ROLE, SF_ROLE, ClusterConfig
from collectors.servicefabric import evidence as sf_evidence
from collectors.servicefabric.commonname import common_name_staging
from daemon.context import Context, listing, short
from daemon.evidence import LOCALAGENT_SOURCE, agent_configs
from daemon.inventory import (
    Rotation,
    certificates,
    node_inventory,
    node_key,
    template_migration,
    template_pair,
)
from daemon.keyaccess import unreadable_new_keys, unverified_new_keys
from daemon.rotation.model import StepState, Verdict, done, not_applicable, pending, unknown

SF_ROLES = (SF_ROLE, SF_CLIENT_ROLE)
SQL_ROLES = ("SQLCluster",)
ADFS_SOURCE = "adfs"
ADFS_ROLES = ("ADFSTokenSigning", "ADFSTokenDecrypting", "ADFSSSL")

States = Mapping[str, StepState]


def gate(ctx: Context) -> Verdict | None:
    """Unknown without the ConfigTemplate pair, pending while no rotation has started; None to go on."""
    pair = template_pair(ctx)
    if pair.status == Rotation.UNKNOWN:
        return unknown(pair.reason)
    if pair.status == Rotation.NONE:
        return pending(f"no rotation in progress: {pair.reason}")
    return None


def roles_gate(ctx: Context, roles: tuple[str, ...]) -> Verdict | None:
    """`gate`, then not-applicable when none of the roles is rotated."""
    verdict = gate(ctx)
    if verdict is not None:
        return verdict
    if not any(template_pair(ctx).rotated(role) for role in roles):
        return not_applicable(f"{listing(list(roles))} not rotated (same thumbprint in both ConfigTemplate.xml)")
    return None


def cluster_configs(ctx: Context) -> Iterator[tuple[str, str, ClusterConfig]]:
    """(source, target, facts) of every cluster configuration read: the staged file and the running cluster."""
    yield from sf_evidence.cluster_configs(ctx.snapshot)


def _no_cluster(ctx: Context) -> Verdict:
    failing = [r for r in ctx.snapshot.of_source("clusterconfig") if r.observation is None]
    if failing:
        return unknown(f"cluster configuration unreadable: {failing[0].target}: {failing[0].health.message}")
    return unknown("no cluster configuration source (clusterconfig, Service Fabric gateway) is configured")


def scripts_updated(ctx: Context, states: States) -> Verdict:
    """Infrastructure and InfrastructureOld exist; a changed schema has been migrated."""
    pair = template_pair(ctx)
    if pair.status == Rotation.UNKNOWN:
        return unknown(pair.reason)
    if pair.status == Rotation.NONE:
        return pending(
            f"no rotation in progress ({pair.reason}): rename Infrastructure to InfrastructureOld and unpack "
            "the latest infrastructure scripts into Infrastructure"
        )
    migration = template_migration(ctx)
    assert migration is not None and pair.new is not None and pair.old is not None
    evidence = (
        f"Infrastructure: {pair.new.path}, schema {migration.new_version or '(none)'}",
        f"InfrastructureOld: {pair.old.path}, schema {migration.old_version or '(none)'}",
    )
    if migration.downgraded:
        return pending("Infrastructure declares an older schema than InfrastructureOld: folders swapped?", *evidence)
    if not migration.carried:
        what = "migrate it to the new schema" if migration.schema_changed else "carry the old settings over"
        return pending(
            f"Infrastructure/ConfigTemplate.xml lacks {listing(list(migration.missing), 3)}: {what}", *evidence
        )
    if migration.schema_changed:
        return done(f"ConfigTemplate.xml migrated from schema {migration.old_version} to {migration.new_version}")
    return done(f"both folders present, schema {migration.new_version} unchanged", *evidence)


def certs_generated(ctx: Context, states: States) -> Verdict:
    """The new ConfigTemplate.xml names thumbprints that differ from the old one."""
    verdict = gate(ctx)
    if verdict is not None:
        return verdict
    pair = template_pair(ctx)
    missing = sorted(role for role, p in pair.pairs.items() if p.not_generated)
    if missing:
        return pending(f"Infrastructure/ConfigTemplate.xml has no thumbprint yet for {listing(missing)}")
    rotated = pair.rotated_roles()
    if not rotated:
        return pending("Infrastructure/ConfigTemplate.xml names the same thumbprints as InfrastructureOld")
    evidence = [
        f"{role}: {', '.join(map(short, pair.retired(role)))} -> {', '.join(map(short, pair.new_thumbprints(role)))}"
        for role in rotated
    ]
    unchanged = sorted(set(pair.pairs) - set(rotated))
    if unchanged:
        evidence.append(f"unchanged: {listing(unchanged, 6)}")
    return done(f"{len(rotated)} roles rotated: {listing(rotated, 6)}", *evidence)


def certs_installed(ctx: Context, states: States) -> Verdict:
    """Every new certificate is in LocalMachine\\My on every node that needs it, with a private key."""
    verdict = gate(ctx)
    if verdict is not None:
        return verdict
    pair = template_pair(ctx)
    rotated = pair.rotated_roles()
    if not rotated:
        return pending("no new certificate generated yet (certs-generated)")
    inventory = node_inventory(ctx)
    if not inventory.configured_sources:
        return unknown("no node certificate source (winrm, certfolder) is configured")
    if not inventory.known:
        return unknown(f"which node needs which role is unknown: {inventory.topology_reason}")
    missing: list[str] = []
    unread: list[str] = []
    installed = 0
    for role in rotated:
        for thumbprint in pair.new_thumbprints(role):
            for node in inventory.needing(role):
                key = node_key(node.name)
                if not inventory.covered(key):
                    unread.append(f"{node.name}: {role} {short(thumbprint)}: {inventory.why_uncovered(key)}")
                    continue
                found = inventory.find(key, thumbprint)
                keys = {o.has_private_key for o in found}
                if not found:
                    missing.append(f"{node.name}: {role} {short(thumbprint)} missing")
                elif True in keys:
                    installed += 1
                elif None in keys:
                    unread.append(f"{node.name}: {role} {short(thumbprint)}: private key not reported by the source")
                else:
                    missing.append(f"{node.name}: {role} {short(thumbprint)} without private key")
    total = installed + len(missing) + len(unread)
    if missing:
        return pending(f"{len(missing)} of {total} installations missing or without private key", *missing, *unread)
    if unread:
        return unknown(f"{len(unread)} of {total} installations cannot be checked", *unread)
    if not total:
        return unknown(f"no node needs the rotated roles {listing(rotated)} (rules.node_roles)")
    # Present with a key is not enough when the service account cannot open it (issue 16).
    unreadable = unreadable_new_keys(ctx)
    if unreadable:
        return pending(f"{len(unreadable)} new private keys the service accounts cannot read", *unreadable)
    unverified = unverified_new_keys(ctx)
    if unverified:
        return unknown(f"{len(unverified)} new private keys the service accounts may not read", *unverified)
    return done(f"all {total} new certificate installations present with private keys")


def sf_staged(ctx: Context, states: States) -> Verdict:
    """The cluster config has the new thumbprint as primary, the old as secondary, the new client as admin."""
    verdict = roles_gate(ctx, SF_ROLES)
    if verdict is not None:
        return verdict
    configs = list(cluster_configs(ctx))
    if not configs:
        return _no_cluster(ctx)
    pair = template_pair(ctx)
    problems: list[str] = []
    evidence: list[str] = []
    for _source, target, cluster in configs:
        if cluster.by_common_name:
            return _common_name_staged(ctx, target, cluster)
        if pair.rotated(SF_ROLE):
            new, old = set(pair.new_thumbprints(SF_ROLE)), set(pair.retired(SF_ROLE))
            if not cluster.certificates:
                problems.append(f"{target}: no ClusterCertificate or ServerCertificate by thumbprint")
            for cert in cluster.certificates:
                where = f"{target} {cert.kind}"
                if cert.thumbprint in new and (not cert.thumbprint_secondary or cert.thumbprint_secondary in old):
                    second = short(cert.thumbprint_secondary) if cert.thumbprint_secondary else "none (cleaned)"
                    evidence.append(f"{where}: primary {short(cert.thumbprint)} (new), secondary {second}")
                elif cert.thumbprint in old:
                    problems.append(f"{where}: primary is still the old thumbprint {short(cert.thumbprint)}")
                elif not cert.thumbprint_secondary and cert.kind == "reverse_proxy":
                    # A reverse proxy with a certificate of its own (Microsoft's samples) is not rotated with
                    # the cluster certificate; staging leaves it alone.
                    evidence.append(f"{where}: its own certificate {short(cert.thumbprint)}, not part of this rotation")
                else:
                    problems.append(
                        f"{where}: primary {short(cert.thumbprint)}, secondary "
                        f"{short(cert.thumbprint_secondary) or 'none'}: not the new/old pair"
                    )
        if pair.rotated(SF_CLIENT_ROLE):
            admins = {c.thumbprint for c in cluster.clients if c.is_admin}
            for thumbprint in pair.new_thumbprints(SF_CLIENT_ROLE):
                if thumbprint in admins:
                    evidence.append(f"{target}: new client {short(thumbprint)} is admin")
                else:
                    problems.append(f"{target}: new client certificate {short(thumbprint)} is not an admin client")
    if problems:
        return pending(problems[0], *problems[1:], *evidence)
    return done("new thumbprints staged in the cluster configuration", *evidence)


def _common_name_staged(ctx: Context, target: str, cluster: ClusterConfig) -> Verdict:
    """A common-name cluster: staged when the new certificate carries a declared name from an allowed issuer."""
    pair = template_pair(ctx)
    seen = {tp: obs.certificate for tp, obs in certificates(ctx).items()}
    check = common_name_staging(cluster, pair.new_thumbprints(SF_ROLE), seen, target)
    note = "declared by common name: no thumbprint staging; the new certificate must be installed on every node"
    if check.value is True:
        return done(f"{target} {note} (certs-installed)", *check.lines)
    if check.value is False:
        return pending(check.lines[0] if check.lines else f"{target}: {note}", *check.lines[1:])
    return unknown(check.lines[0] if check.lines else f"{target}: {note}", *check.lines[1:])


def _agent_step(ctx: Context, share: bool, name: str) -> Verdict:
    verdict = roles_gate(ctx, SF_ROLES)
    if verdict is not None:
        return verdict
    configs = [(t, c) for s, t, c in agent_configs(ctx) if (s != LOCALAGENT_SOURCE) == share]
    if not configs:
        source = SHARE_SOURCE if share else LOCALAGENT_SOURCE
        failing = [r for r in ctx.snapshot.of_source(source) if r.observation is None]
        if failing:
            return unknown(f"{name} unreadable: {failing[0].health.message}")
        return unknown(f"{name}: the {source} source is not configured")
    pair = template_pair(ctx)
    wanted = {SF_ROLE: set(pair.new_thumbprints(SF_ROLE)), SF_CLIENT_ROLE: set(pair.new_thumbprints(SF_CLIENT_ROLE))}
    problems, evidence = [], []
    for target, config in configs:
        for role, value, setting in (
            (SF_ROLE, config.server_thumbprint, "serverCertThumbprint"),
            (SF_CLIENT_ROLE, config.client_thumbprint, "clientCertThumbprint"),
        ):
            line = f"{target} {setting} = {short(value) or '(empty)'}"
            if value in wanted[role]:
                evidence.append(line)
            else:
                problems.append(f"{line}, not the new {role} certificate")
    if problems:
        return pending(problems[0], *problems[1:], *evidence)
    return done(f"{name} names the new Service Fabric certificates", *evidence)


def localagent_updated(ctx: Context, states: States) -> Verdict:
    """localagent-config.json names the cluster's new server and client thumbprints."""
    return _agent_step(ctx, share=False, name="localagent-config.json")


def deployment_config_updated(ctx: Context, states: States) -> Verdict:
    """The agent share's config.json names the cluster's new server and client thumbprints.

    Only LocalAgent 3.2.2 and earlier need it (the current runbook); a newer running LocalAgent
    makes the step not applicable instead of pending.
    """
    version = sf_evidence.localagent_version(ctx.snapshot)
    if sf_evidence.share_config_needed(version) is False:
        return not_applicable(
            f"the running LocalAgent is {version} (fabric:/LocalAgent): the agent share's config.json step is only "
            "needed for LocalAgent 3.2.2 and earlier"
        )
    return _agent_step(ctx, share=True, name="the agent share's config.json")


def _cert_windows(
    ctx: Context, thumbprints: list[tuple[str, str]], what: str
) -> tuple[list[str], list[str], list[str]]:
    """(inside the warning window, not observed, fine) lines for (role, thumbprint) pairs."""
    near: list[str] = []
    unseen: list[str] = []
    fine: list[str] = []
    seen = certificates(ctx)
    for role, thumbprint in thumbprints:
        obs = seen.get(thumbprint)
        if obs is None:
            unseen.append(f"{what} {role} certificate {short(thumbprint)} not observed")
            continue
        days = obs.certificate.days_left(ctx.now)
        line = f"{what} {role} certificate {short(thumbprint)} expires in {days:.0f} days"
        window = ctx.settings.expiry_window(role).warning_days
        if days <= window:
            near.append(f"{line}, inside its {window:g}-day warning window")
        else:
            fine.append(line)
    return near, unseen, fine


def sql_adfs_checked(ctx: Context, states: States) -> Verdict:
    """SQL Server and AD FS certificates are outside their warning windows."""
    pair = template_pair(ctx)
    sql = [(r, t) for r in SQL_ROLES for t in pair.new_thumbprints(r)]
    sql += [(r.role, r.thumbprint) for r in ctx.references if r.role in SQL_ROLES and r.source != "configtemplate"]
    # Every AD FS certificate in use: the newest of each role and a primary still in use before its
    # rollover; only a token certificate a newer one has replaced (superseded) is left out.
    superseded = superseded_of(facts.token_certificates for _target, facts in ctx.snapshot.facts("adfs", AdfsFacts))
    adfs = [
        (r.role, r.thumbprint)
        for r in ctx.references
        if r.role in ADFS_ROLES and r.thumbprint and (r.role, r.thumbprint) not in superseded
    ]
    near, gaps, fine = _cert_windows(ctx, sorted(set(sql)), "SQL Server")
    if not sql:
        gaps.append("no SQL Server certificate is named (ConfigTemplate.xml SQLCluster)")
    adfs_near, adfs_gaps, adfs_fine = _cert_windows(ctx, sorted(set(adfs)), "AD FS")
    near, gaps, fine = near + adfs_near, gaps + adfs_gaps, fine + adfs_fine
    if not ctx.snapshot.has_source(ADFS_SOURCE):
        gaps.append("no AD FS source is configured")
    elif not adfs:
        gaps.append("the AD FS source reports no certificate")
    if near:
        return pending(near[0], *near[1:], *gaps, *fine)
    if gaps:
        return unknown(gaps[0], *gaps[1:], *fine)
    return done(f"{len(fine)} SQL Server and AD FS certificates outside their warning windows", *fine)


def sf_cleaned(ctx: Context, states: States) -> Verdict:
    """No ThumbprintSecondary and no old client thumbprint remain in the cluster configuration."""
    configs = list(cluster_configs(ctx))
    if not configs:
        return _no_cluster(ctx)
    pair = template_pair(ctx)
    old_server, old_client = set(pair.retired(SF_ROLE)), set(pair.retired(SF_CLIENT_ROLE))
    leftovers = []
    for _source, target, cluster in configs:
        if cluster.by_common_name:
            return not_applicable(f"{target} declares the cluster certificates by common name")
        for cert in cluster.certificates:
            if cert.thumbprint_secondary:
                leftovers.append(f"{target} {cert.kind}: ThumbprintSecondary {short(cert.thumbprint_secondary)}")
            if cert.thumbprint in old_server:
                leftovers.append(f"{target} {cert.kind}: primary is the old {short(cert.thumbprint)}")
        leftovers += [
            f"{target}: old client {short(c.thumbprint)}" for c in cluster.clients if c.thumbprint in old_client
        ]
    if leftovers:
        return pending(leftovers[0], *leftovers[1:])
    if pair.status == Rotation.UNKNOWN:
        return unknown(f"no ThumbprintSecondary; old client thumbprints cannot be told apart: {pair.reason}")
    if pair.in_progress and not any(pair.rotated(r) for r in SF_ROLES):
        return not_applicable("the Service Fabric certificates are not rotated and no secondary is left")
    return done("no ThumbprintSecondary and no old client thumbprint in the cluster configuration")
