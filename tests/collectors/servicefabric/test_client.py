"""The gateway client over real HTTPS with mutual TLS: who is accepted, who is refused, and why."""

from __future__ import annotations

import json
import ssl
import time
from datetime import datetime

import pytest

from collectors.base import Deadline
from collectors.clusterconfig import parse_cluster_config
from collectors.errors import CollectorError, Reason
from collectors.servicefabric import api
from collectors.servicefabric.client import GatewayError, GatewayUrl, ServerTrust
from collectors.servicefabric.connector import Connector
from collectors.servicefabric.identity import CertificateFile
from simulator.lab import Lab
from simulator.pki import pfx_bytes
from tests.conftest import free_port
from tests.sfkit import HOST, SfLab, sf_lab


def _connector(sf: SfLab, now: datetime, **overrides: object) -> Connector:
    return Connector(sf.config(**overrides), lambda: now)


def _read_config(connector: Connector, certificate: CertificateFile | None) -> object:
    session = connector.open(certificate, Deadline.after(10))
    try:
        params = {**api.API_6_0, "ConfigurationApiVersion": api.CONFIGURATION_API_VERSION}
        return session.get(api.GET_CONFIGURATION, params)
    finally:
        session.close()


def _pfx(sf: SfLab, name: str, issued: object) -> CertificateFile:
    path = sf.lab.root / "sf" / f"{name}.pfx"
    path.write_bytes(pfx_bytes(issued, sf.lab.password.encode()))  # type: ignore[arg-type]
    return CertificateFile(path, password=sf.lab.password.encode())


def test_read_only_client_reads_and_the_server_is_verified_by_the_lab_ca(sf: SfLab, now: datetime) -> None:
    connector = _connector(sf, now)
    session = connector.open(connector.config.client_certificate, Deadline.after(10))
    try:
        answer = session.get(api.GET_VERSION, {"api-version": "6.4"})
        assert answer == {"Version": "7.2.457.9590"}
        for _ in range(5):
            session.get(api.GET_UPGRADE_STATUS, api.API_6_0)
        assert session.presented[0].thumbprint == sf.lab.cert("ServiceFabric", "old").thumbprint
    finally:
        session.close()
    # Keep-alive: six requests, one TLS connection.
    assert sf.gateway.connections == 1
    monitor = sf.lab.service_certs["SFMonitorClient"].thumbprint
    assert {who for _m, _p, who in sf.gateway.requests} == {monitor}


def test_pinned_thumbprint_accepts_the_presented_certificate(sf: SfLab, now: datetime) -> None:
    old, new = sf.lab.cert("ServiceFabric", "old").thumbprint, sf.lab.cert("ServiceFabric", "new").thumbprint
    # A self-signed or otherwise untrusted certificate is fine when pinned, as with -ServerCertThumbprint.
    connector = _connector(sf, now, trust=ServerTrust(thumbprints=(new, old), ca_bundle=sf.lab.root / "missing.pem"))
    answer = _read_config(connector, connector.config.client_certificate)
    assert isinstance(answer, dict) and "ClusterConfiguration" in answer


def test_wrong_pinned_thumbprint_is_tls_error(sf: SfLab, now: datetime) -> None:
    new = sf.lab.cert("ServiceFabric", "new").thumbprint
    connector = _connector(sf, now, trust=ServerTrust(thumbprints=(new,)))
    with pytest.raises(CollectorError) as caught:
        _read_config(connector, connector.config.client_certificate)
    assert caught.value.reason is Reason.TLS_ERROR
    old = sf.lab.cert("ServiceFabric", "old").thumbprint
    assert (
        f"the gateway presented {old} (CN=*.contoso.lab,O=Contoso Lab), which is not a pinned thumbprint ({new})"
        in (caught.value.message)
    )
    # Nothing was sent to a server that failed verification.
    assert sf.gateway.requests == []


def test_untrusted_server_is_tls_error(sf: SfLab, now: datetime) -> None:
    rogue = sf.lab.root / "rogue.pem"
    rogue.write_bytes(sf.lab.service_certs["rogue-ca"].pem)
    connector = _connector(sf, now, trust=ServerTrust(ca_bundle=rogue))
    with pytest.raises(CollectorError) as caught:
        _read_config(connector, connector.config.client_certificate)
    assert caught.value.reason is Reason.TLS_ERROR
    assert "does not validate against" in caught.value.message and "untrusted: no path from" in caught.value.message
    assert sf.gateway.requests == []


def test_wrong_server_name_is_tls_error(sf: SfLab, now: datetime) -> None:
    connector = _connector(sf, now, trust=ServerTrust(ca_bundle=sf.lab.ca_bundle, server_name="sf.fabrikam.example"))
    with pytest.raises(CollectorError) as caught:
        _read_config(connector, connector.config.client_certificate)
    assert caught.value.reason is Reason.TLS_ERROR
    assert "hostname_mismatch" in caught.value.message


def test_expired_server_certificate_is_tls_error(sf: SfLab, now: datetime) -> None:
    connector = Connector(sf.config(), lambda: now.replace(year=now.year + 3))
    with pytest.raises(CollectorError) as caught:
        _read_config(connector, connector.config.client_certificate)
    assert caught.value.reason is Reason.TLS_ERROR and "expired" in caught.value.message


def test_missing_client_certificate_is_auth_failed(sf: SfLab, now: datetime) -> None:
    connector = _connector(sf, now)
    with pytest.raises(GatewayError) as caught:
        _read_config(connector, None)
    assert caught.value.reason is Reason.AUTH_FAILED and caught.value.status == 403
    assert "the gateway refused no client certificate: HTTP 403 E_ACCESSDENIED" in caught.value.message


def test_client_certificate_the_cluster_does_not_list_is_auth_failed(sf: SfLab, now: datetime) -> None:
    # Issued by the lab CA (the handshake succeeds) but not in the cluster configuration.
    stranger = _pfx(sf, "ssrs", sf.lab.cert("SSRSHTTPS", "new").issued)
    with pytest.raises(GatewayError) as caught:
        _read_config(_connector(sf, now), stranger)
    assert caught.value.reason is Reason.AUTH_FAILED
    assert caught.value.code == "E_ACCESSDENIED"


@pytest.mark.parametrize("max_tls", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_certificate_from_an_unknown_ca_is_auth_failed(lab_copy: Lab, now: datetime, max_tls: object) -> None:
    # TLS 1.2 refuses during the handshake; TLS 1.3 only on the first read after it.
    with sf_lab(lab_copy, max_tls=max_tls) as sf:
        rogue = _pfx(sf, "rogue", sf.lab.service_certs["tls-untrusted"])
        with pytest.raises(CollectorError) as caught:
            _read_config(_connector(sf, now), rogue)
        assert caught.value.reason is Reason.AUTH_FAILED, caught.value
        assert "the gateway refused client certificate" in caught.value.message
        assert "unknown ca" in caught.value.message
        # The server thread counts the failed handshake after the client has seen the alert.
        deadline = time.monotonic() + 10
        while sf.gateway.handshake_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sf.gateway.handshake_failures == 1


def test_read_only_client_is_refused_admin_calls(sf: SfLab, now: datetime) -> None:
    connector = _connector(sf, now)
    session = connector.open(connector.config.client_certificate, Deadline.after(10))
    try:
        with pytest.raises(GatewayError) as caught:
            session.call("POST", api.UPDATE_UPGRADE, api.API_6_0, {"UpdateDescription": {}})
    finally:
        session.close()
    assert caught.value.status == 403 and caught.value.reason is Reason.AUTH_FAILED
    assert "this operation needs an admin client certificate" in caught.value.message


def test_server_errors_keep_service_fabric_code_and_message(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, fail_status=503) as sf, pytest.raises(GatewayError) as caught:
        _read_config(_connector(sf, now), sf.config().client_certificate)
    assert caught.value.reason is Reason.HTTP_ERROR and caught.value.status == 503
    assert caught.value.message == "HTTP 503 FABRIC_E_SERVICE_OFFLINE: the service is unavailable"


def test_slow_gateway_is_timeout(lab_copy: Lab, now: datetime) -> None:
    with sf_lab(lab_copy, latency=2.0) as sf:
        connector = _connector(sf, now)
        session = connector.open(connector.config.client_certificate, Deadline.after(0.5))
        try:
            with pytest.raises(CollectorError) as caught:
                session.get(api.GET_VERSION, {"api-version": "6.4"})
        finally:
            session.close()
    assert caught.value.reason is Reason.TIMEOUT


def test_next_gateway_is_tried_when_a_node_does_not_answer(sf: SfLab, now: datetime) -> None:
    dead = GatewayUrl.parse(f"https://{HOST}:{free_port()}", {HOST: "127.0.0.1"})
    alive = sf.config().gateways[0]
    connector = _connector(sf, now, gateways=(dead, alive))
    assert "ClusterConfiguration" in _read_config(connector, connector.config.client_certificate)  # type: ignore[operator]
    only_dead = _connector(sf, now, gateways=(dead,))
    with pytest.raises(CollectorError) as caught:
        _read_config(only_dead, only_dead.config.client_certificate)
    assert caught.value.reason is Reason.CONNECTION_REFUSED
    assert caught.value.message.startswith("no gateway answered: ")


def test_admin_identity_follows_the_running_configuration(sf: SfLab, now: datetime) -> None:
    connector = _connector(sf, now)
    running = parse_cluster_config(json.loads(sf.cluster.running_text()), "running")
    assert connector.admin_identity(running).thumbprint == sf.lab.cert("ServiceFabricClient", "old").thumbprint
    staged = parse_cluster_config(json.loads(sf.lab.cluster_config.read_text()), "staged")
    assert connector.admin_identity(staged).thumbprint == sf.lab.cert("ServiceFabricClient", "new").thumbprint
    without = _connector(sf, now, admin_certificates=())
    with pytest.raises(CollectorError, match="no admin client certificate is configured"):
        without.admin_identity(running)
    only_new = _connector(sf, now, admin_certificates=(sf.config().admin_certificates[1],))
    with pytest.raises(CollectorError) as caught:
        only_new.admin_identity(running)
    assert caught.value.reason is Reason.AUTH_FAILED
    assert "is an admin client of the running configuration 2.0.0" in caught.value.message
