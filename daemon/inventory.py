"""Views of the evidence shared by the rules and the rotation steps: the ConfigTemplate pair and the nodes.

Each view says what it knows and, where it does not, why: a source that is not configured
or has never answered is unknown, never healthy.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from collectors.configtemplate import ConfigTemplate
from collectors.errors import Reason
from collectors.model import DEFAULT_STORE, CertObservation, Generation, SourceResult
from daemon.context import TEMPLATE_SOURCE, Context, listing, memoized

# Sources that report what a node's certificate stores hold; a new store source adds its name here.
NODE_STORE_SOURCES = ("winrm", "certfolder")
SQL_PURPOSE = "SQL"


class Rotation:
    """Whether a rotation is under way according to the ConfigTemplate pair."""

    IN_PROGRESS = "in-progress"
    NONE = "none"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RolePair:
    """One role's thumbprints in InfrastructureOld (old) and Infrastructure (new)."""

    role: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    not_generated: bool = False

    @property
    def rotated(self) -> bool:
        """True when the new template names a different certificate than the old one."""
        return bool(self.new) and bool(self.old) and set(self.new) != set(self.old)

    @property
    def retired(self) -> tuple[str, ...]:
        """Old thumbprints the new template no longer names."""
        return tuple(t for t in self.old if t not in self.new) if self.rotated else ()


@dataclass(frozen=True)
class TemplatePair:
    """The Infrastructure / InfrastructureOld pair as collected, and the rotation it describes."""

    status: str
    reason: str
    new: ConfigTemplate | None
    old: ConfigTemplate | None
    pairs: dict[str, RolePair] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        """True when both templates are known."""
        return self.status == Rotation.IN_PROGRESS

    @property
    def current(self) -> ConfigTemplate | None:
        """The template describing the environment now: the new one, else the old one."""
        return self.new or self.old

    def rotated_roles(self) -> list[str]:
        """Roles whose certificate the new template changes."""
        return sorted(role for role, pair in self.pairs.items() if pair.rotated)

    def rotated(self, role: str) -> bool:
        """True when the role is being rotated."""
        pair = self.pairs.get(role)
        return pair is not None and pair.rotated

    def retired(self, role: str) -> tuple[str, ...]:
        """The previous generation's thumbprints of a rotated role."""
        pair = self.pairs.get(role)
        return pair.retired if pair is not None else ()

    def new_thumbprints(self, role: str) -> tuple[str, ...]:
        """The thumbprints the new template names for a role."""
        pair = self.pairs.get(role)
        return pair.new if pair is not None else ()


def _failure(result: SourceResult) -> str:
    return f"{result.target}: {result.health.reason}: {result.health.message}"


@memoized
def template_pair(ctx: Context) -> TemplatePair:
    """The ConfigTemplate pair: rotation in progress, none, or unknown (and why)."""
    results = ctx.snapshot.of_source(TEMPLATE_SOURCE)
    if not results:
        return TemplatePair(Rotation.UNKNOWN, "the configtemplate source is not configured", None, None)
    by_generation: dict[Generation, ConfigTemplate] = {}
    failures: dict[str, SourceResult] = {}
    for result in results:
        facts = result.observation.facts if result.observation is not None else None
        if isinstance(facts, ConfigTemplate):
            by_generation[facts.generation] = facts
        else:
            failures[result.target] = result
    new, old = by_generation.get(Generation.NEW), by_generation.get(Generation.OLD)
    if new is None:
        failed = failures.get("Infrastructure")
        reason = _failure(failed) if failed else "Infrastructure/ConfigTemplate.xml has not been read"
        return TemplatePair(Rotation.UNKNOWN, reason, None, old)
    if old is None:
        failed = failures.get("InfrastructureOld")
        if failed is None:
            reason = "no InfrastructureOld is configured (sources.configtemplate.infrastructure_old): no rotation"
            return TemplatePair(Rotation.NONE, reason, new, None, _pairs(new, None))
        if failed.health.reason is Reason.NOT_FOUND:
            reason = f"InfrastructureOld does not exist ({_failure(failed)})"
            return TemplatePair(Rotation.NONE, reason, new, None, _pairs(new, None))
        return TemplatePair(Rotation.UNKNOWN, _failure(failed), new, None, _pairs(new, None))
    return TemplatePair(Rotation.IN_PROGRESS, "", new, old, _pairs(new, old))


def _pairs(new: ConfigTemplate, old: ConfigTemplate | None) -> dict[str, RolePair]:
    roles = {c.role for c in new.active_certificates() if c.role}
    if old is not None:
        roles |= {c.role for c in old.active_certificates() if c.role}
    pairs = {}
    for role in sorted(roles):
        new_certs = [c for c in new.active_certificates() if c.role == role]
        pairs[role] = RolePair(
            role=role,
            old=tuple(old.thumbprints(role)) if old is not None else (),
            new=tuple(new.thumbprints(role)),
            not_generated=any(not c.thumbprint for c in new_certs),
        )
    return pairs


@lru_cache(maxsize=65536)
def node_key(name: str) -> str:
    """Compare node names as Windows does: case-insensitive, the host name without its domain."""
    name = name.strip().lower()
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        return name.split(".", 1)[0]


@dataclass(frozen=True)
class Node:
    """A VM of the environment and the roles it must hold."""

    name: str
    purpose: str
    node_type: str
    roles: frozenset[str]


@dataclass(frozen=True)
class NodeStore:
    """What one node-store source last reported for one node."""

    node: str
    source: str
    target: str
    stale: bool
    certificates: tuple[CertObservation, ...]


@dataclass
class NodeInventory:
    """The environment's nodes (from ConfigTemplate.xml) and what their certificate stores hold."""

    nodes: dict[str, Node]
    stores: dict[str, list[NodeStore]]
    configured_sources: tuple[str, ...]
    unread: dict[str, str]
    topology_reason: str = ""
    # Indexes built once: rules ask "does node N hold T in store S" thousands of times.
    _by_store: dict[tuple[str, str], list[CertObservation]] = field(default_factory=dict, repr=False)
    _by_cert: dict[tuple[str, str, str], list[CertObservation]] = field(default_factory=dict, repr=False)
    _anywhere: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        # Tens of thousands of certificates in one store: keep the loop to plain dictionary work.
        by_store, by_cert, anywhere = self._by_store, self._by_cert, self._anywhere
        lowered: dict[str, str] = {}
        for key, entries in self.stores.items():
            for entry in entries:
                for obs in entry.certificates:
                    store = lowered.get(obs.store)
                    if store is None:
                        store = lowered[obs.store] = obs.store.lower()
                    thumbprint = obs.certificate.thumbprint
                    listed = by_store.get((key, store))
                    if listed is None:
                        listed = by_store[(key, store)] = []
                    listed.append(obs)
                    cert_key = (key, store, thumbprint)
                    same = by_cert.get(cert_key)
                    if same is None:
                        by_cert[cert_key] = [obs]
                    else:
                        same.append(obs)
                    anywhere.add((key, thumbprint))

    @property
    def known(self) -> bool:
        """True when the topology (which node needs which role) is known."""
        return bool(self.nodes)

    def covered(self, key: str) -> bool:
        """True when some node-store source has data for the node."""
        return key in self.stores

    def observations(self, key: str, store: str = DEFAULT_STORE) -> list[CertObservation]:
        """Every observation of the node's store across node-store sources."""
        return self._by_store.get((key, store.lower()), [])

    def find(self, key: str, thumbprint: str, store: str = DEFAULT_STORE) -> list[CertObservation]:
        """Observations of one certificate on one node."""
        return self._by_cert.get((key, store.lower(), thumbprint), [])

    def holds(self, key: str, thumbprint: str) -> bool:
        """True when the node holds the certificate in any store."""
        return (key, thumbprint) in self._anywhere

    def needing(self, role: str) -> list[Node]:
        """Nodes that must hold a role, by name."""
        return sorted((n for n in self.nodes.values() if role in n.roles), key=lambda n: n.name)

    def node_name(self, key: str) -> str:
        """The display name of a node key."""
        if key in self.nodes:
            return self.nodes[key].name
        entries = self.stores.get(key)
        return entries[0].node if entries else key

    def why_uncovered(self, key: str) -> str:
        """Why a node's stores are unknown."""
        if not self.configured_sources:
            return "no node certificate source (winrm, certfolder) is configured"
        return self.unread.get(key, "no node certificate source reports this node")


@memoized
def node_inventory(ctx: Context) -> NodeInventory:
    """The nodes of the current ConfigTemplate.xml with the roles they need, and their stores."""
    rules = ctx.settings.rules
    template = template_pair(ctx).current
    nodes: dict[str, Node] = {}
    reason = ""
    if template is None:
        reason = template_pair(ctx).reason
    else:
        for vm in template.vms():
            nodes[node_key(vm.name)] = Node(vm.name, vm.purpose, vm.node_type, rules.roles_for_purpose(vm.purpose))
        for name in template.sql_vms:
            nodes.setdefault(node_key(name), Node(name, SQL_PURPOSE, "", rules.roles_for_purpose(SQL_PURPOSE)))
        if not nodes:
            reason = f"{template.path} lists no VMs"
    stores: dict[str, list[NodeStore]] = defaultdict(list)
    unread: dict[str, str] = {}
    configured = []
    for source in NODE_STORE_SOURCES:
        results = ctx.snapshot.of_source(source)
        if results:
            configured.append(source)
        for result in results:
            if result.observation is None:
                unread[node_key(result.target)] = f"{source} {_failure(result)}"
                continue
            certs = result.observation.certificates
            names = {o.node for o in certs} or {result.target}
            for name in names:
                mine = tuple(o for o in certs if o.node == name)
                stores[node_key(name)].append(NodeStore(name, source, result.target, result.stale, mine))
    return NodeInventory(nodes, dict(stores), tuple(configured), unread, reason)


def describe_nodes(names: list[str]) -> str:
    """Node names for a message."""
    return listing(sorted(names), 5)


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        return None


@dataclass(frozen=True)
class Migration:
    """How the new ConfigTemplate.xml relates to the old one: schema versions and carried-over content."""

    old_version: str
    new_version: str
    missing: tuple[str, ...]

    @property
    def schema_changed(self) -> bool:
        """True when the two files declare different schema versions."""
        return self.old_version != self.new_version

    @property
    def downgraded(self) -> bool:
        """True when Infrastructure declares an older schema than InfrastructureOld (folders swapped?)."""
        old, new = _version(self.old_version), _version(self.new_version)
        return old is not None and new is not None and new < old

    @property
    def carried(self) -> bool:
        """True when the new file lists every VM and certificate role of the old one."""
        return not self.missing

    @property
    def migrated(self) -> bool:
        """True when the new file is a complete, not older, successor of the old one."""
        return self.carried and not self.downgraded


@memoized
def template_migration(ctx: Context) -> Migration | None:
    """The Infrastructure / InfrastructureOld comparison, or None when the pair is not both known."""
    pair = template_pair(ctx)
    if pair.new is None or pair.old is None:
        return None
    new_vms = {node_key(vm.name) for vm in pair.new.vms()} | {node_key(n) for n in pair.new.sql_vms}
    new_roles = {c.role for c in pair.new.active_certificates()}
    missing = [f"VM {vm.name}" for vm in pair.old.vms() if node_key(vm.name) not in new_vms]
    missing += [f"SQL VM {name}" for name in pair.old.sql_vms if node_key(name) not in new_vms]
    missing += [
        f"certificate {role}"
        for role in sorted({c.role for c in pair.old.active_certificates() if c.role})
        if role not in new_roles
    ]
    return Migration(pair.old.schema_version, pair.new.schema_version, tuple(missing))


@memoized
def certificates(ctx: Context) -> dict[str, CertObservation]:
    """One observation of every certificate seen anywhere, by thumbprint."""
    seen: dict[str, CertObservation] = {}
    for obs in ctx.snapshot.certificates():
        seen.setdefault(obs.thumbprint, obs)
    return seen


def label(ctx: Context, thumbprint: str) -> str:
    """`CN (thumbprint)`, or the bare thumbprint of a certificate nobody has seen."""
    obs = certificates(ctx).get(thumbprint)
    if obs is None:
        return thumbprint
    return f"{obs.certificate.subject_cn or obs.certificate.subject} ({thumbprint})"
