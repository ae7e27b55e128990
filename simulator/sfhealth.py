"""Health answers of the simulated cluster: each node's certificate-expiry events, in Service Fabric's words.

A node reports the declared cluster and server certificate it loads (the one that expires last)
as System.FabricNode `Certificate_cluster` / `Certificate_server`, Warning inside the 30-day
CertificateExpirySafetyMargin, Error once expired.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from simulator.sfcluster import SimulatedCluster, thumbprint
from simulator.sfjson import certificate_information

EXPIRY_MARGIN = timedelta(days=30)


def node_events(cluster: SimulatedCluster, node: str) -> list[dict[str, Any]]:
    """The node's System.FabricNode certificate events, in Service Fabric's wording."""
    info = certificate_information(json.loads(cluster.running_text()))
    now = cluster.wall()
    events = []
    for key, prop in (("ClusterCertificate", "Certificate_cluster"), ("ServerCertificate", "Certificate_server")):
        entry = info.get(key) or {}
        declared = (str(entry.get(k, "")).upper() for k in ("Thumbprint", "ThumbprintSecondary"))
        candidates = [cluster.certificates.get(t) for t in declared]
        # A node loads the declared certificate that expires last.
        cert = max((c for c in candidates if c is not None), key=lambda c: c.not_valid_after_utc, default=None)
        if cert is None:
            continue
        left = cert.not_valid_after_utc - now
        state = "Error" if left.total_seconds() <= 0 else "Warning" if left < EXPIRY_MARGIN else "Ok"
        days, rest = divmod(max(int(left.total_seconds()), 0), 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        events.append(
            {
                "SourceId": "System.FabricNode",
                "Property": prop,
                "HealthState": state,
                "TimeToLiveInMilliSeconds": "P10675199DT2H48M5.4775807S",
                "Description": (
                    f"Certificate expiration: thumbprint = {thumbprint(cert).lower()}, expiration = "
                    f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}.000, remaining lifetime is "
                    f"{days}:{hours}:{minutes:02d}:{seconds:02d}.000, please refresh ahead of time to avoid "
                    "catastrophic failure. Warning threshold Security/CertificateExpirySafetyMargin is "
                    "configured at 30:0:00:00.000, if needed, you can adjust it to fit your refresh process."
                ),
                "SequenceNumber": "1",
                "RemoveWhenExpired": False,
                "IsExpired": False,
            }
        )
    return events


def node_health(cluster: SimulatedCluster, node: str) -> dict[str, Any] | None:
    """NodeHealth, or None for an unknown node."""
    names = {str(n.get("NodeName")) for n in json.loads(cluster.running_text()).get("Nodes", [])}
    if node not in names:
        return None
    events = node_events(cluster, node)
    return {"Name": node, "AggregatedHealthState": _worst(e["HealthState"] for e in events), "HealthEvents": events}


def cluster_health(cluster: SimulatedCluster) -> dict[str, Any]:
    """ClusterHealth with each node's aggregated state."""
    nodes = [str(n.get("NodeName")) for n in json.loads(cluster.running_text()).get("Nodes", [])]
    states = [
        {"Name": n, "AggregatedHealthState": _worst(e["HealthState"] for e in node_events(cluster, n))} for n in nodes
    ]
    return {
        "AggregatedHealthState": _worst(s["AggregatedHealthState"] for s in states),
        "NodeHealthStates": states,
        "HealthEvents": [],
        "ApplicationHealthStates": [],
    }


def _worst(states: Any) -> str:
    order = {"Ok": 0, "Warning": 1, "Error": 2}
    return max(states, key=lambda s: order.get(s, 0), default="Ok")
