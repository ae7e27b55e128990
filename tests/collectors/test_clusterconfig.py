"""ClusterConfig.json: thumbprint and common-name forms, and broken documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.clusterconfig import ClusterConfigFileCollector, load_cluster_config, parse_cluster_config
from collectors.errors import CollectorError, Reason
from collectors.model import Generation
from simulator.lab import Lab


def test_staged_lab_config(lab: Lab) -> None:
    config = load_cluster_config(lab.cluster_config)
    assert (config.name, config.version, config.api_version) == ("D365FOCluster", "2.0.1", "10-2017")
    cluster = config.certificate("cluster")
    assert cluster is not None
    assert cluster.thumbprint == lab.cert("ServiceFabric", "new").thumbprint
    assert cluster.thumbprint_secondary == lab.cert("ServiceFabric", "old").thumbprint
    assert [c.kind for c in config.secondaries()] == ["cluster", "server", "reverse_proxy"]
    assert [(c.thumbprint, c.is_admin) for c in config.clients] == [
        (lab.cert("ServiceFabricClient", "old").thumbprint, False),
        (lab.cert("ServiceFabricClient", "new").thumbprint, True),
    ]
    assert len(config.nodes) == 8 and config.nodes[0].name == "ORCH1"
    assert not config.by_common_name


def test_references_mark_secondaries_old(lab: Lab) -> None:
    collector = ClusterConfigFileCollector(lab.cluster_config)
    observation = collector.collect("ClusterConfig.json", Deadline.after(5))
    secondary = [r for r in observation.references if r.reference.endswith("ClusterCertificate.ThumbprintSecondary")]
    assert len(secondary) == 1 and secondary[0].generation is Generation.OLD
    assert secondary[0].thumbprint == lab.cert("ServiceFabric", "old").thumbprint


def test_common_name_form() -> None:
    document = {
        "name": "cn-cluster",
        "clusterConfigurationVersion": "1.0.0",
        "apiVersion": "10-2017",
        "properties": {
            "security": {
                "CertificateInformation": {
                    "ClusterCertificateCommonNames": {
                        "CommonNames": [
                            {
                                "CertificateCommonName": "sf.contoso.lab",
                                "CertificateIssuerThumbprint": "aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 aa "
                                "bb cc dd, 0123456789abcdef0123456789abcdef01234567",
                            }
                        ],
                        "X509StoreName": "My",
                    },
                    "ClusterCertificateIssuerStores": [{"IssuerCommonName": "Contoso CA", "X509StoreNames": "Root"}],
                    "ClientCertificateCommonNames": [
                        {
                            "CertificateCommonName": "admin.contoso.lab",
                            "IsAdmin": True,
                            "CertificateIssuerThumbprint": "",
                        }
                    ],
                }
            }
        },
    }
    config = parse_cluster_config(document, "ClusterConfig.json")
    assert config.by_common_name
    cluster = next(cn for cn in config.common_names if cn.kind == "cluster")
    assert cluster.issuer_thumbprints == (
        "AABBCCDDEEFF00112233445566778899AABBCCDD",
        "0123456789ABCDEF0123456789ABCDEF01234567",
    )
    client = next(cn for cn in config.common_names if cn.kind == "client")
    assert client.is_admin and client.common_name == "admin.contoso.lab"
    assert config.issuer_stores[0].issuer_common_name == "Contoso CA"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"name": "x", ', "invalid JSON at line 1 column"),
        (b"[1, 2]", "expected a cluster configuration object"),
        (
            b'{"properties": {"security": {"CertificateInformation": {"ClusterCertificate": {"Thumbprint": "xyz"}}}}}',
            "properties.security.CertificateInformation.ClusterCertificate.Thumbprint: not a thumbprint",
        ),
        (
            b'{"properties": {"security": {"CertificateInformation": {"ClientCertificateThumbprints": {}}}}}',
            "ClientCertificateThumbprints: expected an array",
        ),
        (b'{"nodes": "AOS1"}', "nodes: expected an array"),
    ],
)
def test_broken_documents_name_the_field(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "ClusterConfig.json"
    path.write_bytes(content)
    with pytest.raises(CollectorError) as caught:
        load_cluster_config(path)
    assert caught.value.reason is Reason.PARSE_ERROR
    assert str(caught.value).startswith(f"{path}: ") and fragment in str(caught.value)


def test_bom_crlf_file_is_read(tmp_path: Path, lab: Lab) -> None:
    path = tmp_path / "ClusterConfig.json"
    path.write_bytes(b"\xef\xbb\xbf" + lab.cluster_config.read_bytes())
    assert load_cluster_config(path).version == "2.0.1"
    assert b"\r\n" in path.read_bytes()
    assert json.loads(lab.cluster_config.read_bytes())["apiVersion"] == "10-2017"
