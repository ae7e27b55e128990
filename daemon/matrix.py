"""Certificates by node and role: the node × role matrix the status page and `/api/status` show.

Rows are the nodes of the current ConfigTemplate.xml (and any other node a store source
reports); columns are the roles nodes must hold or hold. A cell lists the certificates of
that role in the node's `LocalMachine\\My` with their generation and days left, and says
whether the node needs the role, lacks it, or cannot be seen. Certificates found elsewhere
(TLS endpoints, AD FS, files) are listed apart. Everything is derived from one evaluation:
no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.certificate import iso_z
from collectors.model import CertObservation, Generation
from daemon.context import Context
from daemon.evaluator import Evaluation
from daemon.inventory import NODE_STORE_SOURCES, node_inventory, template_pair
from daemon.settings import DEFAULT_NODE_ROLES, SF_NODE_ROLES, Settings

# Column order: the Service Fabric roles first, then the AOS roles, then the others by name.
_ROLE_ORDER = tuple(dict.fromkeys([*SF_NODE_ROLES, *(role for roles in DEFAULT_NODE_ROLES.values() for role in roles)]))


class CellState:
    """How a cell (or a certificate) stands, worst first."""

    UNKNOWN = "unknown"  # the node's store could not be read
    MISSING = "missing"  # the node needs the role and holds none of its current certificates
    EXPIRED = "expired"
    CRITICAL = "critical"
    WARNING = "warning"
    OK = "ok"
    NOT_NEEDED = "not-needed"  # nothing needed, nothing held


_WORST_FIRST = (
    CellState.UNKNOWN,
    CellState.MISSING,
    CellState.EXPIRED,
    CellState.CRITICAL,
    CellState.WARNING,
    CellState.OK,
    CellState.NOT_NEEDED,
)


def expiry_state(days_left: float, role: str, settings: Settings) -> str:
    """expired, critical, warning or ok against the role's expiry window."""
    window = settings.expiry_window(role)
    if days_left <= 0:
        return CellState.EXPIRED
    if days_left <= window.critical_days:
        return CellState.CRITICAL
    if days_left <= window.warning_days:
        return CellState.WARNING
    return CellState.OK


def _generations(evaluation: Evaluation) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for ref in evaluation.references:
        # The ConfigTemplate pair's verdict was already applied by resolve_references; a
        # thumbprint some configuration calls new wins over one calling it old.
        if out.get((ref.role, ref.thumbprint)) != str(Generation.NEW):
            out[(ref.role, ref.thumbprint)] = str(ref.generation)
    return out


def _cert_entry(
    obs: CertObservation, role: str, *, generation: str, now: datetime, settings: Settings, stale: bool
) -> dict[str, Any]:
    days = obs.certificate.days_left(now)
    return {
        "thumbprint": obs.thumbprint,
        "subject_cn": obs.certificate.subject_cn,
        "generation": generation,
        "not_after": iso_z(obs.certificate.not_after),
        "days_left": round(days, 1),
        "state": expiry_state(days, role, settings),
        "has_private_key": obs.has_private_key,
        "source": obs.source,
        "stale": stale,
    }


def _worst(states: list[str]) -> str:
    return min(states, key=_WORST_FIRST.index) if states else CellState.NOT_NEEDED


def _role_key(role: str) -> tuple[int, str]:
    return (_ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER), role)


def certificate_matrix(evaluation: Evaluation, settings: Settings) -> dict[str, Any]:
    """The node × role matrix and the certificates found outside node stores, as JSON-ready data."""
    now = evaluation.evaluated_at
    # History is not needed for the node view; an empty one keeps this free of I/O.
    ctx = Context.build(evaluation.snapshot, (), now, settings)
    inventory = node_inventory(ctx)
    pair = template_pair(ctx)
    generations = _generations(evaluation)
    roles_of = evaluation.roles
    keys = list(inventory.nodes) + sorted(k for k in inventory.stores if k not in inventory.nodes)
    columns = {role for node in inventory.nodes.values() for role in node.roles}
    held: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key in keys:
        stale_sources = {entry.source for entry in inventory.stores.get(key, []) if entry.stale}
        cells: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str]] = set()
        for obs in inventory.observations(key):
            for role in roles_of.get(obs.thumbprint, ()):
                if (role, obs.thumbprint) in seen:
                    continue  # the same certificate reported by two sources
                seen.add((role, obs.thumbprint))
                generation = generations.get((role, obs.thumbprint), "")
                entry = _cert_entry(
                    obs, role, generation=generation, now=now, settings=settings, stale=obs.source in stale_sources
                )
                cells.setdefault(role, []).append(entry)
                columns.add(role)
        held[key] = cells
    roles = sorted(columns, key=_role_key)
    rows = []
    for key in keys:
        node = inventory.nodes.get(key)
        covered = inventory.covered(key)
        row_cells = {}
        for role in roles:
            certs = sorted(held[key].get(role, []), key=lambda c: (c["generation"] != "new", -c["days_left"]))
            needed = node is not None and role in node.roles
            current = set(pair.new_thumbprints(role)) or {c["thumbprint"] for c in certs}
            if needed and not covered:
                state = CellState.UNKNOWN
            elif needed and not any(c["thumbprint"] in current for c in certs):
                state = CellState.MISSING
            else:
                state = _worst([c["state"] for c in certs])
            row_cells[role] = {"needed": needed, "state": state, "certificates": certs}
        rows.append(
            {
                "node": node.name if node is not None else inventory.node_name(key),
                "purpose": node.purpose if node is not None else "",
                "covered": covered,
                "reason": "" if covered else inventory.why_uncovered(key),
                "cells": row_cells,
            }
        )
    return {
        "roles": roles,
        "nodes": rows,
        "topology": inventory.topology_reason,
        "elsewhere": _elsewhere(evaluation, settings, generations),
    }


def _elsewhere(
    evaluation: Evaluation, settings: Settings, generations: dict[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """Certificates seen by sources other than node stores: endpoints, AD FS, files."""
    now = evaluation.evaluated_at
    out = []
    seen: set[tuple[str, str, str]] = set()
    for result in evaluation.snapshot:
        if result.source in NODE_STORE_SOURCES or result.observation is None:
            continue
        for obs in result.observation.certificates:
            where = obs.location or obs.node or result.target
            if (obs.source, where, obs.thumbprint) in seen:
                continue
            seen.add((obs.source, where, obs.thumbprint))
            roles = evaluation.roles.get(obs.thumbprint, ())
            role = roles[0] if roles else ""
            entry = _cert_entry(obs, role or "default", generation="", now=now, settings=settings, stale=result.stale)
            entry.update(
                where=where,
                node=obs.node,
                roles=list(roles),
                generation=next((g for r in roles if (g := generations.get((r, obs.thumbprint), ""))), ""),
            )
            out.append(entry)
    return sorted(out, key=lambda e: (e["source"], e["where"], e["days_left"]))
