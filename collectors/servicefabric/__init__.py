"""Service Fabric through its HTTP gateway (source `servicefabric`; one target = the cluster).

Modules:

* `identity`   the client certificate (PFX or PEM) and its private key, kept in memory;
* `client`     HTTPS with mutual TLS; the server verified by pinned thumbprints or a CA bundle;
* `connector`  the configured gateway URLs (failover) and which certificate to present;
* `api`        the REST calls and their answers parsed into facts;
* `model`      the facts: `GatewayFacts`, `UpgradeStatus`, `UpgradeProgress`, `AppCertificate`...;
* `evidence`   decisions shared by findings, remediation preconditions and the rotation tracker;
* `collector`  `ServiceFabricCollector` and its metrics.

The file source `clusterconfig` (collectors.clusterconfig) reads the staged ClusterConfig.json
that operators edit; this source reads what the cluster runs. Both may be configured at once.
"""
