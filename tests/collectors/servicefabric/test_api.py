"""Parsing the gateway's answers: durations, upgrade progress, node certificate events, application parameters."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from collectors.errors import CollectorError, Reason
from collectors.servicefabric import api
from collectors.servicefabric.model import REPLICA_CHECK_TIMEOUT_RESET_SECONDS

TP = "C967093FEC973A7F3F6916A4DB71C33277CDBDA0"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT0H2M0S", 120.0),
        ("P1DT2H", 93600.0),
        ("PT1.5S", 1.5),
        ("90000", 90.0),
        (1500, 1.5),
        ("49710.06:28:15", 4294967295.0),
        ("00:00:30", 30.0),
        ("1.02:03:04.5", 93784.5),
        ("", None),
        (None, None),
        ("soon", None),
    ],
)
def test_durations_in_every_form_the_gateway_uses(value: object, seconds: float | None) -> None:
    assert api.parse_duration_seconds(value) == seconds


def test_the_reset_timeout_prints_as_powershell_does() -> None:
    assert api.format_timespan(REPLICA_CHECK_TIMEOUT_RESET_SECONDS) == "49710.06:28:15"
    assert api.format_timespan(30) == "00:00:30"


def test_upgrade_progress() -> None:
    answer = {
        "CodeVersion": "7.2.457.9590",
        "ConfigVersion": "2.0.1",
        "UpgradeDomains": [{"Name": "ud0", "State": "Completed"}, {"Name": "ud1", "State": "InProgress"}],
        "UpgradeState": "RollingForwardInProgress",
        "NextUpgradeDomain": "",
        "RollingUpgradeMode": "Monitored",
        "UpgradeDescription": {"UpgradeReplicaSetCheckTimeoutInSeconds": REPLICA_CHECK_TIMEOUT_RESET_SECONDS},
        "UpgradeDurationInMilliseconds": "PT1H0M0S",
        "UpgradeDomainDurationInMilliseconds": "PT0H40M0S",
        "StartTimestampUtc": "2026-11-27T10:00:00.000Z",
        "FailureReason": "None",
    }
    progress = api.parse_upgrade_progress(answer, "gateway")
    assert progress.replica_check_timeout_reset
    assert (progress.current_domain, progress.completed_domains, progress.domain_duration_seconds) == ("ud1", 1, 2400.0)
    assert progress.started_at == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert progress.rolling_upgrade_mode == "Monitored"


def test_node_certificate_events_as_service_fabric_words_them() -> None:
    answer = {
        "HealthEvents": [
            {
                "SourceId": "System.FabricNode",
                "Property": "Certificate_cluster",
                "HealthState": "Warning",
                "Description": f"Certificate expiration: thumbprint = {TP.lower()}, expiration = 2026-12-09 "
                "12:00:00.000, remaining lifetime is 12:0:00:00.000, please refresh ahead of time to avoid "
                "catastrophic failure. Warning threshold Security/CertificateExpirySafetyMargin is configured at "
                "30:0:00:00.000, if needed, you can adjust it to fit your refresh process.",
            },
            {"SourceId": "System.FabricNode", "Property": "State", "HealthState": "Ok", "Description": "Up"},
            {"SourceId": "Watchdog", "Property": "Certificate_x", "HealthState": "Error", "Description": "n/a"},
            {"SourceId": "System.FabricNode", "Property": "Certificate_server", "HealthState": "Ok", "Description": ""},
        ]
    }
    events = list(api.certificate_events("AOS1", answer, "gateway"))
    assert [(e.certificate, e.thumbprint, e.health_state) for e in events] == [
        ("cluster", TP, "Warning"),
        ("server", "", "Ok"),
    ]
    assert events[0].expires_at == datetime(2026, 12, 9, 12, tzinfo=UTC)
    assert events[0].close_to_expiration and not events[1].close_to_expiration


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("DataAccess_DataEncryptionCertificateThumbprint", "DataEncryption"),
        ("dataencryptioncertificatethumbprint", "DataEncryption"),
        ("Infrastructure.SessionAuthenticationCertificateThumbprint", "SessionAuthentication"),
        ("ServiceFabric_ClientCertificate", "ServiceFabricClient"),
        ("Other_ClientCertificate", ""),
        ("AXSF_InstanceCount", ""),
    ],
)
def test_parameter_roles_by_name_or_setting(name: str, role: str) -> None:
    assert api.parameter_role(name, api.DEFAULT_PARAMETER_ROLES) == role


def test_application_parameters_that_are_not_thumbprints_are_problems() -> None:
    items = [
        {
            "Name": "fabric:/AXSF",
            "TypeName": "AXSFType",
            "TypeVersion": "1.0",
            "Parameters": [
                {"Key": "DataAccess_DataSigningCertificateThumbprint", "Value": f"\u200e{TP.lower()}"},
                {"Key": "DataAccess_DataEncryptionCertificateThumbprint", "Value": "see vault"},
                {"Key": "Infrastructure_SessionAuthenticationCertificateThumbprint", "Value": ""},
            ],
        },
        "garbage",
    ]
    found, names, problems = api.application_certificates(items, {**api.DEFAULT_PARAMETER_ROLES}, "gateway")
    assert [(a.role, a.thumbprint) for a in found] == [("DataSigning", TP)]
    assert names == ["fabric:/AXSF"]
    assert problems == [
        "fabric:/AXSF parameter DataAccess_DataEncryptionCertificateThumbprint (DataEncryption) is not a "
        "thumbprint: 'see vault'"
    ]


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ([], "expected a JSON object"),
        ({"ClusterConfiguration": 3}, "ClusterConfiguration: expected the configuration as a string"),
        ({"ClusterConfiguration": "{nope"}, "ClusterConfiguration is not JSON"),
        ({"ClusterConfiguration": json.dumps({"properties": []})}, "properties: expected an object"),
    ],
)
def test_a_configuration_answer_that_makes_no_sense_is_bad_output(answer: object, text: str) -> None:
    with pytest.raises(CollectorError) as caught:
        api.parse_configuration(answer, "https://gw/$/GetClusterConfiguration")
    assert caught.value.reason is Reason.BAD_OUTPUT and text in caught.value.message


def test_version_answer() -> None:
    assert api.parse_version({"Version": "7.1.510.9590"}, "gw") == "7.1.510.9590"
    with pytest.raises(CollectorError, match="Version: expected a version string"):
        api.parse_version({"Version": ""}, "gw")
