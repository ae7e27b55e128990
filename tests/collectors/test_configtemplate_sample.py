"""ConfigTemplate.xml as Microsoft's on-premises articles show it (tests/samples/infrastructure)."""

from __future__ import annotations

from pathlib import Path

from collectors.configtemplate import load_config_template
from collectors.model import Generation
from daemon.settings import RuleSettings

SAMPLE = Path(__file__).parent.parent / "samples" / "infrastructure" / "ConfigTemplate-contoso.xml"


def test_microsofts_template_parses() -> None:
    template = load_config_template(SAMPLE, Generation.NEW)
    star = next(c for c in template.certificates if c.role == "ServiceFabric")
    assert star.thumbprint == "55A4EF521A3A00F64C4AC665DBAF3F17408CFE3D"
    assert star.dns_names == ("ax.contoso.com", "sf.contoso.com", "*.contoso.com")
    assert star.provider == "Microsoft Enhanced RSA and AES Cryptographic Provider"
    encipherment = next(c for c in template.certificates if c.role == "ServiceFabricEncryption")
    assert (
        encipherment.certificate_type == "DocumentEncryptionCert" and encipherment.protect_to == "contoso\\D365Admins"
    )
    assert [c.role for c in template.certificates if c.disabled] == ["RSAT"]
    assert template.thumbprints("Orchestrator") == ["66A4EA345A3A44F6E33AC215DBAF3F34A19CEE3D"]
    assert template.sql_listener == "LBDEN01SQLA" and template.sql_vms == ("LBDEN01SQLA01", "LBDEN01SQLA02")
    assert {t.purpose for t in template.node_types} == {"AOS", "Orchestrator", "BI", "MR", "SSIS"}


def test_regression_disabled_node_types_are_not_nodes() -> None:
    template = load_config_template(SAMPLE, Generation.NEW)
    disabled = [t.name for t in template.node_types if t.disabled]
    assert disabled == ["AOSNodeType"]
    names = [vm.name for vm in template.vms()]
    assert not {"aos1", "aos2", "aos3"} & set(names)
    assert names[:3] == ["LBDE05FS1AOS01", "LBDE05FS1AOS02", "LBDE05FS1AOS03"]
    assert "LBDEN01SSSIS1" in names and len(names) == 6 + 3 + 2 + 2 + 2


def test_default_node_roles_follow_microsofts_purposes() -> None:
    rules = RuleSettings()
    template = load_config_template(SAMPLE, Generation.NEW)
    roles = {vm.name: rules.roles_for_purpose(vm.purpose) for vm in template.vms()}
    assert {"SSRSHTTPS", "ReportingService"} <= roles["LBDEN01SFBI1"]
    assert "DataEncryption" not in roles["LBDEN01SFBI1"]
    assert {"Orchestrator", "ServiceFabricClient"} <= roles["LBDEN01SFORCH1"]
    assert "ServiceFabricClient" not in roles["LBDE05FS1AOS01"]
    assert {"DataEncryption", "DataSigning", "SessionAuthentication"} <= roles["LBDE05FS1AOS04"]
    assert roles["LBDEN01SSSIS1"] == frozenset({"ServiceFabric", "ServiceFabricEncryption"})
    assert rules.roles_for_purpose("SQL") == frozenset({"SQLCluster"})
    # Every Service Fabric node, whatever its purpose, holds the cluster and encipherment certificates.
    assert all({"ServiceFabric", "ServiceFabricEncryption"} <= r for r in roles.values())


def test_operator_node_roles_merge_over_the_defaults() -> None:
    rules = RuleSettings(node_roles={"bi": ["ServiceFabric"]})
    assert rules.roles_for_purpose("BI") == frozenset({"ServiceFabric"})
    assert "DataEncryption" in rules.roles_for_purpose("AOS")


def test_service_accounts_are_read_with_the_netbios_domain() -> None:
    # Private-key access (issue 16): the accounts that must read keys are named by refName.
    template = load_config_template(SAMPLE, Generation.NEW)
    assert template.domain_name == "Contoso"
    assert template.service_account("gmsaAXSF") == "Contoso\\svc-AXSF-Prod$"
    assert template.service_account("GMSALOCALAGENT") == "Contoso\\svc-LA-Prod$"
    assert template.service_account("axserviceuser") == "", "disabled accounts are not asked for"
    assert template.service_account("gmsaNone") == ""
    # ProtectTo protects the exported PFX for administrators; it is not the key ACL of the services.
    assert {c.protect_to for c in template.certificates if c.protect_to} == {"contoso\\D365Admins"}
