"""Which certificate roles each node purpose must hold in LocalMachine\\My: the built-in defaults.

The purpose is ConfigTemplate.xml's `NodeType@purpose` (Microsoft's template uses `Orchestrator`,
`AOS`, `BI` for the report servers, `MR` and `SSIS`), or `SQL` for the `SQLCluster/SQLVMList` VMs.
A purpose not listed takes `default`. Where each entry comes from is in docs/node-roles.md; the
operator's `rules.node_roles` is merged over this table.
"""

from __future__ import annotations

# Every Service Fabric node: the cluster/server certificate secures node-to-node traffic, and the
# data encipherment certificate "must be installed on each node in the cluster" (Service Fabric
# secret management) so each node can decrypt the application secrets it runs.
SF_EVERY_NODE = ("ServiceFabric", "ServiceFabricEncryption")
SQL_PURPOSE = "SQL"
DEFAULT_NODE_ROLES: dict[str, tuple[str, ...]] = {
    "default": SF_EVERY_NODE,
    "AOS": (
        *SF_EVERY_NODE,
        "SessionAuthentication",
        "DataEncryption",
        "DataSigning",
        "FinancialReporting",
        "ReportingService",
        "RSAT",
    ),
    # The LocalAgent runs here and connects to the cluster with the client certificate.
    "Orchestrator": (*SF_EVERY_NODE, "ServiceFabricClient", "Orchestrator"),
    "BI": (*SF_EVERY_NODE, "ReportingService", "SSRSHTTPS"),
    "MR": (*SF_EVERY_NODE, "FinancialReporting"),
    "SSIS": SF_EVERY_NODE,
    SQL_PURPOSE: ("SQLCluster",),
}
# Purposes of Microsoft's ConfigTemplate.xml (configure-infrascripts-onprem.md), for messages and checks.
TEMPLATE_PURPOSES = ("Orchestrator", "AOS", "BI", "MR", "SSIS")
