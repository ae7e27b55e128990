"""ClusterConfig.json staging and cleanup: targeted edits, refusals, and the stage-then-cleanup property."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediations.base import RemediationError
from remediations.sfconfig import SfRotationThumbprints, bump_version, cleanup, stage
from simulator.lab import Lab
from simulator.servicefabric import running_config_text

HEX = "0123456789ABCDEF"
KEYS = ("ClusterCertificate", "ServerCertificate", "ReverseProxyCertificate")


def _tp(seed: int) -> str:
    return (f"{seed:08X}" * 5)[:40]


OLD_SF, NEW_SF, OLD_CLIENT, NEW_CLIENT = _tp(0xA1), _tp(0xB2), _tp(0xC3), _tp(0xD4)
ROTATION = SfRotationThumbprints(NEW_SF, NEW_CLIENT, OLD_CLIENT)


def test_bump_version() -> None:
    assert [bump_version(v) for v in ("2.0.0", "1.9", "7", "v1.0.41")] == ["2.0.1", "1.10", "8", "v1.0.42"]
    with pytest.raises(RemediationError, match="does not end in a number"):
        bump_version("2.0.0-beta")


def test_staging_the_lab_file_changes_only_the_targeted_bytes(lab_copy: Lab) -> None:
    data = running_config_text(lab_copy).replace("\n", "\r\n").encode("utf-8-sig")
    old = lab_copy.cert("ServiceFabric", "old").thumbprint
    old_client = lab_copy.cert("ServiceFabricClient", "old").thumbprint
    new, new_client = (
        lab_copy.cert("ServiceFabric", "new").thumbprint,
        lab_copy.cert("ServiceFabricClient", "new").thumbprint,
    )
    staged, values = stage(data, SfRotationThumbprints(new, new_client, old_client), "ClusterConfig.json")
    assert staged.startswith(b"\xef\xbb\xbf") and b"\n" not in staged.replace(b"\r\n", b"")
    assert [v.setting for v in values] == [
        "ClusterCertificate.Thumbprint",
        "ClusterCertificate.ThumbprintSecondary",
        "ServerCertificate.Thumbprint",
        "ServerCertificate.ThumbprintSecondary",
        "ReverseProxyCertificate.Thumbprint",
        "ReverseProxyCertificate.ThumbprintSecondary",
        "ClientCertificateThumbprints[0].IsAdmin",
        "ClientCertificateThumbprints[+]",
        "clusterConfigurationVersion",
    ]
    before_lines = data.decode("utf-8-sig").split("\r\n")
    after_lines = staged.decode("utf-8-sig").split("\r\n")
    removed = [line for line in before_lines if line not in after_lines]
    # The store name gains a comma: ThumbprintSecondary is inserted after it, in its siblings' style.
    assert removed == [
        '    "clusterConfigurationVersion": "2.0.0",',
        *[f'                    "Thumbprint": "{old}",', '                    "X509StoreName": "My"'] * 3,
    ]
    assert '                        "IsAdmin": false' in after_lines
    assert f'"ThumbprintSecondary": "{old}"' in staged.decode("utf-8-sig")
    document = json.loads(staged.decode("utf-8-sig"))
    assert document["properties"]["security"]["CertificateInformation"]["ClientCertificateThumbprints"] == [
        {"CertificateThumbprint": old_client, "IsAdmin": False},
        {"CertificateThumbprint": new_client, "IsAdmin": True},
    ]
    cleaned, cleaned_values = cleanup(staged, old_client, "ClusterConfig.json")
    assert [v.setting for v in cleaned_values][-2:] == [
        "ClientCertificateThumbprints[0]",
        "clusterConfigurationVersion",
    ]
    assert cleanup(cleaned, old_client, "ClusterConfig.json") == (cleaned, ())


def _document(**info: Any) -> dict[str, Any]:
    return {
        "name": "c",
        "clusterConfigurationVersion": "1.0.0",
        "properties": {"security": {"CertificateInformation": info}},
    }


@pytest.mark.parametrize(
    ("info", "text"),
    [
        (
            {"ClusterCertificate": {"Thumbprint": OLD_SF, "ThumbprintSecondary": _tp(9)}},
            "still has ThumbprintSecondary",
        ),
        ({"ClusterCertificate": {"Thumbprint": NEW_SF}}, "already uses the new thumbprint"),
        (
            {"ClusterCertificate": {"Thumbprint": OLD_SF}, "ClientCertificateThumbprints": []},
            f"the old admin client {OLD_CLIENT} is not in the client list",
        ),
        ({"ClusterCertificateCommonNames": {"CommonNames": []}}, "no certificate is declared by thumbprint"),
        (
            {"ClusterCertificate": {"Thumbprint": OLD_SF}, "ClientCertificateThumbprints": {"x": 1}},
            "ClientCertificateThumbprints is not an array",
        ),
    ],
)
def test_staging_refuses_what_it_cannot_stage(info: dict[str, Any], text: str) -> None:
    with pytest.raises(RemediationError, match=text):
        stage(json.dumps(_document(**info)).encode(), ROTATION, "ClusterConfig.json")


# -- the property: stage then clean up ------------------------------------------------------------

thumbprints = st.text(HEX, min_size=40, max_size=40).filter(lambda t: t not in (NEW_SF, NEW_CLIENT, OLD_CLIENT))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=12))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
unrelated = st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in KEYS), json_value, max_size=3)


@st.composite
def configurations(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid thumbprint-form configuration, its old primary, and a layout to serialise it with."""
    old_primary = draw(thumbprints)
    kinds = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
    info: dict[str, Any] = {
        kind: {"Thumbprint": old_primary, "X509StoreName": draw(st.sampled_from(["My", "Root"])), **draw(unrelated)}
        for kind in kinds
    }
    others = [
        {"CertificateThumbprint": tp, "IsAdmin": draw(st.booleans())}
        for tp in draw(st.lists(thumbprints, max_size=3, unique=True))
    ]
    clients = [*others, {"CertificateThumbprint": OLD_CLIENT, "IsAdmin": True}]
    draw(st.randoms()).shuffle(clients)
    info["ClientCertificateThumbprints"] = clients
    info.update(draw(unrelated))
    version = ".".join(str(n) for n in draw(st.lists(st.integers(0, 99), min_size=1, max_size=4)))
    document = {
        "name": draw(st.text(min_size=1, max_size=10)),
        "clusterConfigurationVersion": version,
        "apiVersion": "10-2017",
        "nodes": [{"nodeName": f"N{i}", "upgradeDomain": f"ud{i}"} for i in range(draw(st.integers(1, 4)))],
        "properties": {"security": {"CertificateInformation": info, **draw(unrelated)}, **draw(unrelated)},
        **draw(unrelated),
    }
    return document, old_primary


def _serialise(document: dict[str, Any], indent: Any, crlf: bool, bom: bool) -> bytes:
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    if crlf:
        text = text.replace("\n", "\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def _expected(document: dict[str, Any]) -> dict[str, Any]:
    wanted = copy.deepcopy(document)
    info = wanted["properties"]["security"]["CertificateInformation"]
    for key in KEYS:
        if key in info:
            info[key]["Thumbprint"] = NEW_SF
    clients = [c for c in info["ClientCertificateThumbprints"] if c["CertificateThumbprint"] != OLD_CLIENT]
    info["ClientCertificateThumbprints"] = [*clients, {"CertificateThumbprint": NEW_CLIENT, "IsAdmin": True}]
    wanted["clusterConfigurationVersion"] = bump_version(bump_version(document["clusterConfigurationVersion"]))
    return wanted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    configurations(),
    st.sampled_from([None, 2, 4, "\t"]),
    st.booleans(),
    st.booleans(),
)
def test_stage_then_cleanup_gives_the_original_with_new_thumbprints(
    generated: tuple[dict[str, Any], str], indent: Any, crlf: bool, bom: bool
) -> None:
    document, old_primary = generated
    data = _serialise(document, indent, crlf, bom)
    staged, _ = stage(data, ROTATION, "ClusterConfig.json")
    staged_document = json.loads(staged.decode("utf-8-sig"))
    staged_info = staged_document["properties"]["security"]["CertificateInformation"]
    for key in KEYS:
        if key in staged_info:
            assert (staged_info[key]["Thumbprint"], staged_info[key]["ThumbprintSecondary"]) == (NEW_SF, old_primary)
    cleaned, _ = cleanup(staged, OLD_CLIENT, "ClusterConfig.json")
    assert json.loads(cleaned.decode("utf-8-sig")) == _expected(document)
    # The file keeps its encoding and line endings.
    assert cleaned.startswith(b"\xef\xbb\xbf") == bom
    assert (b"\r\n" in cleaned) == (b"\r\n" in data)
