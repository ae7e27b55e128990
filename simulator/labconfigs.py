"""The lab's configuration files: ConfigTemplate.xml (old and new), ClusterConfig.json, localagent-config.json.

Written for the lab's stage by `build_lab`, and again by the demo's stage walk (`simulator.stages`).
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from simulator.labmodel import (
    DISABLED_NODE_TYPES,
    DOMAIN,
    NODE_TYPES,
    ROLES,
    SERVICE_ACCOUNTS,
    SQL_NODES,
    WINRM_DOMAIN,
    Lab,
)


def _template(lab: Lab, generation: str, schema: str) -> bytes:
    config = ET.Element("Config")
    ET.SubElement(ET.SubElement(config, "Schema"), "Version").text = schema
    accounts = ET.SubElement(config, "ADServiceAccounts")
    ET.SubElement(accounts, "DomainName").text = WINRM_DOMAIN
    for ref_name, name, _rid in SERVICE_ACCOUNTS:
        attributes = {"type": "gMSA", "name": name, "refName": ref_name, "disabled": "false"}
        account = ET.SubElement(accounts, "ADServiceAccount", attributes)
        ET.SubElement(account, "DNSHostName").text = f"{name.rstrip('$')}.{DOMAIN}"
    certificates = ET.SubElement(config, "Certificates")
    for spec in ROLES:
        cert = lab.cert(spec.role, generation)
        element = ET.SubElement(
            certificates,
            "Certificate",
            {
                "type": spec.role,
                "exportable": "true",
                "generateSelfSignedCert": str(not spec.ca_issued).lower(),
                "generateADCSCert": "false",
                "disabled": "false",
                "manualProperties": "false",
            },
        )
        for tag, text in (
            ("Name", spec.name),
            ("FileName", spec.name.lower()),
            ("DNSName", ";".join(spec.dns or (spec.subject,))),
            ("Subject", spec.subject),
            ("Provider", "Microsoft Enhanced RSA and AES Cryptographic Provider"),
            ("KeyUsage", ""),
            ("EnhancedKeyUsage", ""),
            ("CertificateType", ""),
            ("Thumbprint", cert.thumbprint),
            ("ProtectTo", "CONTOSO\\D365 Admins"),
        ):
            ET.SubElement(element, tag).text = text
    cluster = ET.SubElement(config, "ServiceFabricCluster")
    ET.SubElement(cluster, "ClusterName").text = "D365FOCluster"
    for type_name, purpose, prefix, primary, names in NODE_TYPES:
        node_type = ET.SubElement(
            cluster,
            "NodeType",
            {
                "name": type_name,
                "primary": str(primary).lower(),
                "namePrefix": prefix,
                "purpose": purpose,
                "disabled": "false",
            },
        )
        vm_list = ET.SubElement(node_type, "VMList")
        for index, name in enumerate(names):
            node = lab.node(name)
            ET.SubElement(
                vm_list,
                "VM",
                {
                    "name": name,
                    "ipAddress": node.ip_address,
                    "faultDomain": f"fd:/fd{index}",
                    "updateDomain": f"ud{index}",
                },
            )
    # As in Microsoft's template: a node type left disabled, its VMs placeholders with no address.
    for type_name, purpose, prefix, names in DISABLED_NODE_TYPES:
        node_type = ET.SubElement(
            cluster,
            "NodeType",
            {"name": type_name, "primary": "false", "namePrefix": prefix, "purpose": purpose, "disabled": "true"},
        )
        vm_list = ET.SubElement(node_type, "VMList")
        for index, name in enumerate(names):
            attributes = {"name": name, "ipAddress": "", "faultDomain": f"fd:/fd{index}", "updateDomain": f"ud{index}"}
            ET.SubElement(vm_list, "VM", {**attributes, "hasSSIS": "false"})
    sql = ET.SubElement(config, "SQLCluster")
    ET.SubElement(sql, "ListenerName").text = f"sql1.{DOMAIN}"
    sql_list = ET.SubElement(sql, "SQLVMList")
    for name in SQL_NODES:
        ET.SubElement(sql_list, "SQLVM", {"name": name, "ipAddress": lab.node(name).ip_address})
    shares = ET.SubElement(config, "FileShares")
    for ref, share in (("aos", "aos-storage"), ("agent", "agent")):
        element = ET.SubElement(shares, "FileShare", {"refName": ref})
        ET.SubElement(element, "Name").text = share
        ET.SubElement(element, "Path").text = f"\\\\DC1\\D365FFOStorage\\{share}"
    ET.indent(config, space="    ")
    return b'<?xml version="1.0" encoding="utf-8"?>\r\n' + ET.tostring(config, encoding="utf-8").replace(b"\n", b"\r\n")


def write_templates(lab: Lab) -> None:
    """Infrastructure/ConfigTemplate.xml; from staged on, the new one and InfrastructureOld with the old one."""
    lab.infrastructure.mkdir(exist_ok=True)
    if lab.stage == "before":
        (lab.infrastructure / "ConfigTemplate.xml").write_bytes(_template(lab, "old", "2.17"))
        return
    lab.infrastructure_old.mkdir(exist_ok=True)
    (lab.infrastructure_old / "ConfigTemplate.xml").write_bytes(_template(lab, "old", "2.17"))
    (lab.infrastructure / "ConfigTemplate.xml").write_bytes(_template(lab, "new", "2.17"))


def cluster_config_document(lab: Lab) -> dict[str, object]:
    """The lab's ClusterConfig.json as a document (staged: new primary, old secondary)."""
    staged = lab.stage != "before"
    old_sf, new_sf = lab.cert("ServiceFabric", "old"), lab.cert("ServiceFabric", "new")
    old_client, new_client = lab.cert("ServiceFabricClient", "old"), lab.cert("ServiceFabricClient", "new")

    def pair() -> dict[str, str]:
        if staged:
            return {"Thumbprint": new_sf.thumbprint, "ThumbprintSecondary": old_sf.thumbprint, "X509StoreName": "My"}
        return {"Thumbprint": old_sf.thumbprint, "X509StoreName": "My"}

    clients = [{"CertificateThumbprint": old_client.thumbprint, "IsAdmin": not staged}]
    if staged:
        clients.append({"CertificateThumbprint": new_client.thumbprint, "IsAdmin": True})
    # certmon's read-only monitoring client, by common name and pinned issuer (thumbprint list unchanged)
    issuer = lab.ca.thumbprint
    by_name = [
        {"CertificateCommonName": f"certmon.{DOMAIN}", "CertificateIssuerThumbprint": issuer, "IsAdmin": False}
        for _cert in [lab.service_certs.get("SFMonitorClient")]
        if _cert is not None
    ]
    node_types = []
    for type_name, _purpose, _prefix, primary, _names in NODE_TYPES:
        node_types.append(
            {
                "name": type_name,
                "clientConnectionEndpointPort": "19000",
                "clusterConnectionEndpointPort": "19001",
                "leaseDriverEndpointPort": "19002",
                "serviceConnectionEndpointPort": "19003",
                "httpGatewayEndpointPort": "19080",
                "reverseProxyEndpointPort": "19081",
                "applicationPorts": {"startPort": "20001", "endPort": "20031"},
                "ephemeralPorts": {"startPort": "20606", "endPort": "20861"},
                "isPrimary": primary,
            }
        )
    return {
        "name": "D365FOCluster",
        "clusterConfigurationVersion": "2.0.1" if staged else "2.0.0",
        "apiVersion": "10-2017",
        "nodes": [
            {
                "nodeName": n.name,
                "iPAddress": n.ip_address,
                "nodeTypeRef": n.node_type,
                "faultDomain": f"fd:/fd{_position(n.name)}",
                "upgradeDomain": f"ud{_position(n.name)}",
            }
            for n in lab.nodes
            if n.node_type
        ],
        "properties": {
            "diagnosticsStore": {
                "metadata": "Please replace the diagnostics file share with an actual file share.",
                "dataDeletionAgeInDays": "7",
                "storeType": "FileShare",
                "connectionstring": "\\\\DC1\\D365FFOStorage\\diagnostics",
            },
            "security": {
                "metadata": "The Credential type X509 indicates this cluster is secured using X509 certificates.",
                "ClusterCredentialType": "X509",
                "ServerCredentialType": "X509",
                "CertificateInformation": {
                    "ClusterCertificate": pair(),
                    "ServerCertificate": pair(),
                    "ReverseProxyCertificate": pair(),
                    "ClientCertificateThumbprints": clients,
                    **({"ClientCertificateCommonNames": by_name} if by_name else {}),
                },
            },
            "nodeTypes": node_types,
            "fabricSettings": [
                {
                    "name": "Setup",
                    "parameters": [
                        {"name": "FabricDataRoot", "value": "C:\\ProgramData\\SF"},
                        {"name": "FabricLogRoot", "value": "C:\\ProgramData\\SF\\Log"},
                    ],
                },
            ],
        },
    }


def _position(node: str) -> int:
    """A VM's index within its node type: the fault and upgrade domain the template gives it."""
    return next(names.index(node) for *_rest, names in NODE_TYPES if node in names)


def write_cluster_config(lab: Lab) -> None:
    """ClusterConfig.json for the lab's stage, with Windows line ends."""
    text = json.dumps(cluster_config_document(lab), indent=4)
    lab.cluster_config.write_bytes(text.replace("\n", "\r\n").encode())


def localagent_document(lab: Lab) -> dict[str, object]:
    """localagent-config.json as LCS generates it; still pointing at the old cluster certificates."""
    return {
        "componentsFolder": "C:\\LocalAgent\\Components",
        "serviceFabric": {
            "connectionEndpoint": f"{lab.node('ORCH1').ip_address}:19000",
            "clusterId": "d365fo-onprem-cluster",
            "certificateSettings": {
                "serverCertThumbprint": lab.cert("ServiceFabric", "old").thumbprint,
                "clientCertThumbprint": lab.cert("ServiceFabricClient", "old").thumbprint,
            },
        },
        "lcs": {
            "environmentId": "3f1d6c5e-4b6a-4d1f-9d62-2b1fb0d1a001",
            "projectId": "1234567",
            "lcsUrl": "https://lcs.dynamics.com",
        },
        "downloadFolder": "\\\\DC1\\D365FFOStorage\\agent\\assets",
        "deploymentOptions": {"enableSSIS": False, "enableSSRS": True, "sqlServerVersion": "2019"},
        "components": [{"name": "AXSF", "version": "10.0.42"}, {"name": "FinancialReporting", "version": "10.0.42"}],
    }


def write_localagent(lab: Lab) -> None:
    """localagent-config.json for the lab's stage."""
    text = json.dumps(localagent_document(lab), indent=4)
    lab.localagent_config.write_bytes(text.replace("\n", "\r\n").encode())
