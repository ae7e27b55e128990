"""Pre-flight checks before a Service Fabric configuration upgrade (issue 16), for stage and clean-up.

Each check answers one question Service Fabric (or the runbook) would otherwise answer with a
failed or harmful upgrade:

* the configuration version increases (Service Fabric refuses an upgrade to the same or a lower one);
* the primary and secondary thumbprints differ (an identical pair stops the upgrade);
* no primary is swapped in place: a slot's primary changes only with the previous one kept as
  secondary (the two-step rotation), never from the old thumbprint straight to the new one;
* the file equals the running configuration apart from the intended change (a stale copy would
  silently undo whatever changed on the cluster since it was exported).

The other pre-flight checks live where their evidence does: certificates with private keys on
every node (`sfchecks.node_certificates_check`), issuer pinning of common-name clusters
(`collectors.servicefabric.commonname`), Service Fabric 7.2 or later and no upgrade running
(`collectors.servicefabric.evidence`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from collectors.clusterconfig import ClusterConfig
from collectors.servicefabric.evidence import SfRotation, gateway_facts, rotation_slots
from remediations.base import Check, RemediationContext
from remediations.sfconfig import bump_version

MAX_DIFFERENCES = 5
# Members a rotation changes on purpose; everything else must match the running configuration.
INTENDED = re.compile(
    r"^clusterconfigurationversion$"
    r"|^properties\.security\.certificateinformation\.(clustercertificate|servercertificate|reverseproxycertificate)"
    r"\.(thumbprint|thumbprintsecondary)$"
    r"|^properties\.security\.certificateinformation\.clientcertificatethumbprints(\[\d+\].*)?$"
)


def _version_key(version: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", version)
    return tuple(int(p) for p in parts) if parts else None


def target_version(config: ClusterConfig, stage: str, done_stage: str) -> str:
    """The version the upgrade will carry: the file's, raised once when this step still has to edit it."""
    return config.version if stage == done_stage else bump_version(config.version)


def version_increases_check(ctx: RemediationContext, target: str) -> Check:
    """The upgrade's configuration version is greater than the running one."""
    name = "configuration version increases"
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is None:
        return Check(name, False, "the running configuration version is unknown (the gateway was not read)", False)
    running = facts.config.version
    if running == target:
        return Check(name, True, f"the cluster already runs {target}: no upgrade is needed")
    wanted, now = _version_key(target), _version_key(running)
    if wanted is None or now is None:
        return Check(name, False, f"cannot compare configuration versions {target!r} and {running!r}")
    if wanted <= now:
        return Check(
            name,
            False,
            f"the upgrade would carry version {target}, not greater than the running {running}: Service Fabric "
            "refuses it; export the running configuration and stage from it",
        )
    return Check(name, True, f"{running} -> {target}")


def pair_differs_check(rotation: SfRotation) -> Check:
    """The new primary is not the old certificate (an identical primary/secondary pair stops the upgrade)."""
    name = "primary and secondary differ"
    if rotation.old_server and rotation.old_server == rotation.new_server:
        return Check(
            name,
            False,
            f"the new and the old ServiceFabric thumbprints are both {rotation.new_server}: a primary equal to its "
            "secondary stops the upgrade; check the new ConfigTemplate.xml",
        )
    return Check(name, True, f"{rotation.new_server} differs from {rotation.old_server or '(old unknown)'}")


def no_in_place_swap_check(ctx: RemediationContext, config: ClusterConfig, rotation: SfRotation) -> Check:
    """No slot goes from the running primary to another primary without keeping the running one as secondary."""
    name = "no in-place swap of a primary"
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is None:
        return Check(name, False, "the running configuration is unknown (the gateway was not read)", False)
    running = {c.kind: c for c in facts.config.certificates}
    swaps = []
    for cert in rotation_slots(config, rotation):
        now = running.get(cert.kind)
        if now is None or now.thumbprint == cert.thumbprint:
            continue
        if cert.thumbprint_secondary != now.thumbprint and now.thumbprint_secondary != cert.thumbprint:
            swaps.append(
                f"{cert.kind}: the cluster runs {now.thumbprint}, the file names {cert.thumbprint} without keeping "
                f"{now.thumbprint} as ThumbprintSecondary"
            )
    if swaps:
        return Check(name, False, "; ".join(swaps) + ": stage the new certificate as primary with the old as secondary")
    return Check(name, True, "each changed primary keeps the running one as secondary")


def _normalised(value: Any, path: str, out: dict[str, Any]) -> None:
    """Flatten a document with lower-cased member names (the file may be camelCase, the cluster PascalCase)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() == "metadata" or item is None:
                continue  # comments in hand-written files; the cluster drops them and nulls
            _normalised(item, f"{path}.{str(key).lower()}" if path else str(key).lower(), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _normalised(item, f"{path}[{index}]", out)
    else:
        out[path] = str(value).lower() if isinstance(value, bool) else str(value)


def differences(file_document: Any, running_document: Any) -> list[str]:
    """Paths (lower-cased) where the file and the running configuration differ, intended changes aside."""
    mine: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    _normalised(file_document, "", mine)
    _normalised(running_document, "", theirs)
    out = []
    for path in sorted(set(mine) | set(theirs)):
        if INTENDED.match(path):
            continue
        if mine.get(path) != theirs.get(path):
            out.append(f"{path}: file {mine.get(path, '(absent)')!r}, running {theirs.get(path, '(absent)')!r}")
    return out


def same_as_running_check(ctx: RemediationContext, data_text: str) -> Check:
    """The file equals the running configuration apart from the rotation's members and the version."""
    name = "file equals the running configuration apart from the rotation"
    facts = gateway_facts(ctx.snapshot, fresh=True)
    if facts is None:
        return Check(name, False, "the running configuration is unknown (the gateway was not read)", False)
    try:
        found = differences(json.loads(data_text), json.loads(facts.config_text))
    except (ValueError, RecursionError) as err:
        return Check(name, False, f"cannot compare: {err}")
    if found:
        shown = "; ".join(found[:MAX_DIFFERENCES])
        more = f" (and {len(found) - MAX_DIFFERENCES} more)" if len(found) > MAX_DIFFERENCES else ""
        return Check(
            name,
            False,
            f"{shown}{more}: the upgrade would also change these; export the running configuration "
            "(Get-ServiceFabricClusterConfiguration) and stage from it",
        )
    return Check(name, True, "no difference outside the certificate members and the version")
