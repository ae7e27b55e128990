"""ConfigTemplate.xml: the lab pair, empty thumbprints, and hostile or broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.base import Deadline
from collectors.configtemplate import ConfigTemplateCollector, load_config_template, parse_config_template
from collectors.errors import CollectorError, Reason
from collectors.model import Generation
from simulator.lab import Lab

MINIMAL = b"""<?xml version="1.0" encoding="utf-8"?>
<Config>
  <Schema><Version>2.3</Version></Schema>
  <Certificates>
    <Certificate type="DataEncryption" disabled="false">
      <Name>DataEncryption</Name>
      <Thumbprint></Thumbprint>
    </Certificate>
    <Certificate type="RSAT" disabled="true">
      <Name>RSAT</Name>
      <Thumbprint>0123456789ABCDEF0123456789ABCDEF01234567</Thumbprint>
    </Certificate>
  </Certificates>
</Config>
"""


def test_lab_pair_gives_new_and_old_thumbprints_per_role(lab: Lab) -> None:
    new = load_config_template(lab.infrastructure, Generation.NEW)
    old = load_config_template(lab.infrastructure_old, Generation.OLD)
    assert new.schema_version == "2.17"
    assert new.thumbprints("DataEncryption") == [lab.cert("DataEncryption", "new").thumbprint]
    assert old.thumbprints("DataEncryption") == [lab.cert("DataEncryption", "old").thumbprint]
    star = next(c for c in new.certificates if c.role == "ServiceFabric")
    assert star.name == "Star" and star.dns_names[0] == "*.contoso.lab" and not star.disabled
    assert [vm.name for vm in new.vms()] == ["ORCH1", "ORCH2", "ORCH3", "AOS1", "AOS2", "AOS3", "BI1", "MR1"]
    batch = next(t for t in new.node_types if t.name == "BatchOnlyAOSNodeType")
    assert batch.disabled and [vm.name for vm in batch.vms] == ["batchaos1", "batchaos2"]
    aos = next(t for t in new.node_types if t.name == "AOSNodeType")
    assert aos.purpose == "AOS" and not aos.primary and aos.vms[0].ip_address == "10.0.1.11"
    assert new.sql_vms == ("SQL1",) and new.sql_listener == "sql1.contoso.lab"
    assert new.share("agent") == "\\\\DC1\\D365FFOStorage\\agent"


def test_collector_targets_and_references(lab: Lab) -> None:
    collector = ConfigTemplateCollector(lab.infrastructure, lab.infrastructure_old)
    assert collector.targets() == ("Infrastructure", "InfrastructureOld")
    observation = collector.collect("InfrastructureOld", Deadline.after(5))
    refs = {r.role: r for r in observation.references}
    assert refs["DataEncryption"].generation is Generation.OLD
    assert refs["DataEncryption"].thumbprint == lab.cert("DataEncryption", "old").thumbprint
    assert refs["DataEncryption"].reference == "InfrastructureOld/ConfigTemplate.xml:DataEncryption"


def test_empty_thumbprints_are_allowed_and_disabled_certificates_skipped() -> None:
    template = parse_config_template(MINIMAL, "ConfigTemplate.xml", Generation.NEW)
    assert [(c.role, c.thumbprint, c.disabled) for c in template.certificates] == [
        ("DataEncryption", "", False),
        ("RSAT", "0123456789ABCDEF0123456789ABCDEF01234567", True),
    ]
    assert template.thumbprints("DataEncryption") == []
    assert template.thumbprints("RSAT") == []


def test_bom_and_utf16_are_read(tmp_path: Path) -> None:
    text = MINIMAL.decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    path = tmp_path / "ConfigTemplate.xml"
    path.write_bytes(text.encode("utf-16"))
    assert load_config_template(path, Generation.NEW).schema_version == "2.3"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL)
    assert load_config_template(tmp_path, Generation.NEW).schema_version == "2.3"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"<Config><Certificates>", "invalid XML"),
        (b"<NotConfig/>", "root element is <NotConfig>, expected <Config>"),
        (
            MINIMAL.replace(b"0123456789ABCDEF0123456789ABCDEF01234567", b"12 34 zz"),
            "Certificates/Certificate[2] (RSAT 'RSAT')/Thumbprint: not a thumbprint",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<Config>&lol2;</Config>",
            "refused XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Config>&xxe;</Config>',
            "refused XML",
        ),
    ],
)
def test_broken_and_hostile_files_are_refused_with_the_file_named(content: bytes, fragment: str) -> None:
    with pytest.raises(CollectorError) as caught:
        parse_config_template(content, "D:\\Infrastructure\\ConfigTemplate.xml", Generation.NEW)
    assert caught.value.reason is Reason.PARSE_ERROR
    assert str(caught.value).startswith("D:\\Infrastructure\\ConfigTemplate.xml: ")
    assert fragment in str(caught.value)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as caught:
        load_config_template(tmp_path / "nowhere", Generation.OLD)
    assert caught.value.reason is Reason.NOT_FOUND
