"""ClusterConfig parsing and editing on Microsoft's sample shapes: camelCase files, PascalCase exports, UTF-16.

The samples are in tests/samples/servicefabric (see tests/samples/SOURCES.md). Before the
case-insensitive reading, a PascalCase configuration (what the cluster returns and what
`Get-ServiceFabricClusterConfiguration > file` writes) parsed as an empty configuration with no
error: these tests fail on that code.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.clusterconfig import ClusterConfigFileCollector, load_cluster_config, parse_cluster_config
from collectors.errors import CollectorError, Reason
from collectors.servicefabric.api import parse_configuration
from collectors.servicefabric.evidence import SfRotation, rotation_stage, slot_states
from remediations.jsonedit import JsonEditor
from remediations.sfconfig import SfRotationThumbprints, cleanup, stage

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "servicefabric"
SF_OLD = "5A1F3C4E8B2D6A7C9E0F1B3D5C7A9E2F4B6D8C01"
REVERSE_PROXY = "9C8B7A6F5E4D3C2B1A0F9E8D7C6B5A4F3E2D1C0B"
ADMIN = "71DE04467C9ED0544D021098BCD44C71E183414E"
READ_ONLY = "C4188EAAA858779865F8614A0DDA4C13C5A1376E"
SF_NEW = "0123456789ABCDEF0123456789ABCDEF01234567"
NEW_ADMIN = "FEDCBA9876543210FEDCBA9876543210FEDCBA98"


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_the_docs_common_name_example_is_read_and_its_typo_named() -> None:
    """Microsoft's article prints a client thumbprint with 41 hex digits ("c4 c18 8e ..."): a clear error."""
    with pytest.raises(CollectorError) as caught:
        load_cluster_config(SAMPLES / "ClusterConfig.X509.CommonName.docs.json")
    assert caught.value.reason is Reason.PARSE_ERROR
    assert "ClientCertificateThumbprints[0].CertificateThumbprint" in caught.value.message
    fixed = json.loads(_sample("ClusterConfig.X509.CommonName.docs.json").decode().replace("c4 c18 8e", "c4 18 8e"))
    config = parse_cluster_config(fixed, "docs sample")
    assert config.by_common_name and not config.certificates
    assert [(c.kind, c.common_name) for c in config.common_names] == [
        ("cluster", "myClusterCertCommonName"),
        ("server", "myServerCertCommonName"),
    ]
    assert config.common_names[1].issuer_thumbprints == ("7CFC919713168DFFA8EE712BA2F462620003490D",)
    assert [(s.kind, s.issuer_common_name) for s in config.issuer_stores] == [
        ("cluster", "ClusterIssuer1"),
        ("cluster", "ClusterIssuer2"),
    ]
    assert [(c.thumbprint, c.is_admin) for c in config.clients] == [(READ_ONLY, False), (ADMIN, True)]


def test_camel_file_pascal_answer_and_utf16_export_read_the_same() -> None:
    camel = load_cluster_config(SAMPLES / "ClusterConfig.X509.ReverseProxy.json")
    answer = json.loads(_sample("GetClusterConfiguration.ReverseProxy.json"))
    pascal, _text = parse_configuration(answer, "https://gateway/$/GetClusterConfiguration")
    exported = load_cluster_config(SAMPLES / "ClusterConfig.exported.utf16.json")
    assert camel == pascal == exported
    assert (camel.name, camel.version, camel.api_version) == ("SampleCluster", "1.0.0", "10-2017")
    first = camel.nodes[0]
    assert (first.name, first.ip_address, first.node_type, first.upgrade_domain) == (
        "vm0",
        "10.7.0.5",
        "NodeType0",
        "UD0",
    )
    assert {(c.kind, c.thumbprint) for c in camel.certificates} == {
        ("cluster", SF_OLD),
        ("server", SF_OLD),
        ("reverse_proxy", REVERSE_PROXY),
    }
    assert [(c.thumbprint, c.is_admin) for c in exported.clients] == [(READ_ONLY, False), (ADMIN, True)]


def test_a_configuration_without_certificates_is_an_error_not_an_empty_success(tmp_path: Path) -> None:
    document = json.loads(_sample("ClusterConfig.X509.ReverseProxy.json").decode())
    security = document["properties"]["security"]
    security["CertificateInfo"] = security.pop("CertificateInformation")  # a misspelt section
    path = tmp_path / "ClusterConfig.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(CollectorError) as caught:
        load_cluster_config(path)
    assert caught.value.reason is Reason.PARSE_ERROR
    assert "no certificate found under properties.security.CertificateInformation" in caught.value.message
    # The file source raises it (the runner marks the source down with the reason), never empty facts.
    with pytest.raises(CollectorError, match="no certificate found"):
        ClusterConfigFileCollector(path).collect(path.name, Deadline.after(10))
    with pytest.raises(CollectorError, match="no certificate found"):
        parse_configuration({"ClusterConfiguration": json.dumps(document)}, "gateway")


def _rotation() -> SfRotationThumbprints:
    return SfRotationThumbprints(SF_NEW, NEW_ADMIN, ADMIN, SF_OLD)


def test_staging_an_exported_utf16_file_keeps_its_encoding_casing_and_the_reverse_proxy() -> None:
    data = _sample("ClusterConfig.exported.utf16.json")
    staged, changes = stage(data, _rotation(), "ClusterConfig.json")
    assert staged.startswith(b"\xff\xfe")
    text = staged[2:].decode("utf-16-le")
    assert '"ClusterConfigurationVersion": "1.0.1"' in text and "clusterConfigurationVersion" not in text
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    config = parse_cluster_config(json.loads(text), "staged")
    slots = {c.kind: (c.thumbprint, c.thumbprint_secondary) for c in config.certificates}
    assert slots == {
        "cluster": (SF_NEW, SF_OLD),
        "server": (SF_NEW, SF_OLD),
        "reverse_proxy": (REVERSE_PROXY, ""),  # its own certificate: untouched
    }
    assert [(c.thumbprint, c.is_admin) for c in config.clients] == [
        (READ_ONLY, False),
        (ADMIN, False),
        (NEW_ADMIN, True),
    ]
    new_entry = JsonEditor(staged).get(
        ("Properties", "Security", "CertificateInformation", "ClientCertificateThumbprints", 2)
    )
    assert set(new_entry) == {"CertificateThumbprint", "IsAdmin"}
    assert [c.setting for c in changes] == [
        "ClusterCertificate.Thumbprint",
        "ClusterCertificate.ThumbprintSecondary",
        "ServerCertificate.Thumbprint",
        "ServerCertificate.ThumbprintSecondary",
        "ClientCertificateThumbprints[1].IsAdmin",
        "ClientCertificateThumbprints[+]",
        "ClusterConfigurationVersion",
    ]
    rotation = SfRotation(new_server=SF_NEW, old_server=SF_OLD, new_client=NEW_ADMIN, old_client=ADMIN)
    assert rotation_stage(config, rotation) == "staged"
    assert f"reverse_proxy: its own certificate {REVERSE_PROXY}, not part of this rotation (left as it is)" in (
        slot_states(config, rotation)
    )
    cleaned, _ = cleanup(staged, ADMIN, "ClusterConfig.json", new_server=SF_NEW)
    final = parse_cluster_config(json.loads(cleaned[2:].decode("utf-16-le")), "cleaned")
    assert {c.kind: (c.thumbprint, c.thumbprint_secondary) for c in final.certificates} == {
        "cluster": (SF_NEW, ""),
        "server": (SF_NEW, ""),
        "reverse_proxy": (REVERSE_PROXY, ""),
    }
    assert rotation_stage(final, rotation) == "rotated"


def test_a_camel_file_stays_camel_when_staged() -> None:
    data = _sample("ClusterConfig.X509.ReverseProxy.json")
    staged, _ = stage(data, _rotation(), "ClusterConfig.json")
    text = staged.decode("utf-8")
    assert '"clusterConfigurationVersion": "1.0.1"' in text and "ClusterConfigurationVersion" not in text
    # Every original line that did not carry a changed value is still there, byte for byte.
    removed = [line[2:] for line in difflib.ndiff(data.decode().split("\r\n"), text.split("\r\n")) if line[:2] == "- "]
    # (a member gained a separator where one was inserted after it)
    kept = set(text.split("\r\n"))
    assert removed and all(
        SF_OLD in line or "true" in line or "1.0.0" in line or f"{line}," in kept for line in removed
    ), removed
