"""The TLS collector against TLS endpoints on loopback: certificates kept whatever their validity, reasons mapped."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from OpenSSL import SSL

from collectors.base import Deadline
from collectors.errors import CollectorError, Reason
from collectors.model import Generation, Observation
from collectors.tls.collector import Endpoint, TlsCollector, TlsEndpointFacts
from simulator.lab import Lab
from simulator.pki import Issued
from simulator.tds import TdsServer
from simulator.tls import TlsEndpointServer, same_port_on

STAR_NAME = "ax.d365ffo.onprem.contoso.lab"


def _collect(lab: Lab, now: datetime, endpoint: Endpoint, timeout: float = 5.0, **kwargs: object) -> Observation:
    collector = TlsCollector([endpoint], lab.ca_bundle, clock=lambda: now, **kwargs)  # type: ignore[arg-type]
    return collector.collect(endpoint.name, Deadline.after(timeout))


def _endpoint(name: str, host: str, port: int, **kwargs: object) -> Endpoint:
    kwargs.setdefault("addresses", ("127.0.0.1",))
    return Endpoint(name, host, port, **kwargs)  # type: ignore[arg-type]


def _facts(observation: Observation) -> TlsEndpointFacts:
    assert isinstance(observation.facts, TlsEndpointFacts)
    return observation.facts


def test_a_valid_endpoint_reports_its_chain_version_and_role(lab: Lab, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,)) as server:
        observation = _collect(lab, now, _endpoint("aos", STAR_NAME, server.port, role="ServiceFabric"))
    probe = _facts(observation).probes[0]
    assert probe.success and probe.chain_valid and probe.chain_error == ""
    assert probe.tls_version == "TLS 1.3" and probe.cipher
    assert [c.thumbprint for c in probe.presented] == [star.thumbprint, lab.ca.thumbprint]
    leaf = observation.certificates[0]
    assert (leaf.source, leaf.node, leaf.store, leaf.thumbprint) == ("tls", "127.0.0.1", "aos", star.thumbprint)
    assert "chain depth 0" in leaf.location and f"SNI {STAR_NAME}" in leaf.location
    assert observation.certificates[1].thumbprint == lab.ca.thumbprint
    (reference,) = observation.references
    assert (reference.role, reference.thumbprint, reference.generation) == (
        "ServiceFabric",
        star.thumbprint,
        Generation.NEW,
    )
    assert observation.problems == ()
    assert server.server_names == [STAR_NAME]


def test_sni_can_be_set_or_left_out(lab: Lab, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,)) as server:
        named = _collect(lab, now, _endpoint("by-ip", "127.0.0.1", server.port, sni="aos1.contoso.lab"))
        bare = _collect(lab, now, _endpoint("no-sni", "127.0.0.1", server.port, sni=""))
    assert server.server_names == ["aos1.contoso.lab", None]
    assert _facts(named).probes[0].chain_valid
    # Without a name the certificate is checked against the address, which it does not carry.
    assert _facts(bare).probes[0].chain_error == "hostname_mismatch"


@pytest.mark.parametrize(
    ("cert_name", "chain_name", "host", "error", "text"),
    [
        ("tls-expired", "ca", "expired.contoso.lab", "expired", "expired on"),
        ("tls-untrusted", "rogue-ca", "untrusted.contoso.lab", "untrusted", "Untrusted Test Root CA"),
        ("tls-wrongname", "ca", "wrongname.contoso.lab", "hostname_mismatch", "not wrongname.contoso.lab"),
    ],
)
def test_invalid_chains_still_report_the_certificate(
    lab: Lab, now: datetime, cert_name: str, chain_name: str, host: str, error: str, text: str
) -> None:
    cert = lab.service_certs[cert_name]
    chain = lab.ca if chain_name == "ca" else lab.service_certs[chain_name]
    with TlsEndpointServer(cert, (chain,)) as server:
        observation = _collect(lab, now, _endpoint(cert_name, host, server.port))
    probe = _facts(observation).probes[0]
    assert probe.success, "the handshake itself succeeded"
    assert probe.chain_valid is False and probe.chain_error == error and text in probe.chain_message
    assert observation.certificates[0].thumbprint == cert.thumbprint
    (problem,) = observation.problems
    assert problem.reason is Reason.TLS_ERROR and error in problem.message and "127.0.0.1" in problem.message


def test_a_self_signed_certificate_is_reported(lab: Lab, now: datetime) -> None:
    cert = lab.cert("SessionAuthentication", "new").issued  # self-signed by the scripts
    with TlsEndpointServer(cert) as server:
        observation = _collect(lab, now, _endpoint("session", "SessionAuthentication.contoso.lab", server.port))
    probe = _facts(observation).probes[0]
    assert probe.chain_error == "self_signed" and observation.certificates[0].thumbprint == cert.thumbprint


def test_a_handshake_failing_after_the_certificate_keeps_it(lab: Lab, now: datetime) -> None:
    # Like an SF gateway probed without a client certificate: TLS 1.2, certificate sent, then an alert.
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,), mode="client-cert") as server:
        observation = _collect(lab, now, _endpoint("gateway", STAR_NAME, server.port))
    probe = _facts(observation).probes[0]
    assert not probe.success and probe.reason is Reason.TLS_ERROR
    assert "handshake" in probe.message
    assert probe.chain_valid is True, "the chain itself is fine"
    assert observation.certificates[0].thumbprint == star.thumbprint
    assert [p.reason for p in observation.problems] == [Reason.TLS_ERROR]


@pytest.mark.parametrize(
    ("mode", "text"),
    [("close", "connection closed by the server during the TLS handshake"), ("plain", "does not speak TLS")],
)
def test_a_handshake_failing_before_any_certificate_is_a_tls_error(
    lab: Lab, now: datetime, mode: str, text: str
) -> None:
    with (
        TlsEndpointServer(lab.cert("ServiceFabric", "new").issued, mode=mode) as server,
        pytest.raises(CollectorError) as err,
    ):
        _collect(lab, now, _endpoint("broken", STAR_NAME, server.port))
    assert err.value.reason is Reason.TLS_ERROR
    assert text in err.value.message and f"127.0.0.1:{server.port}" in err.value.message
    assert str(err.value).startswith("tls endpoint broken:")


def test_an_endpoint_still_on_tls_1_0_is_reported_with_its_version(lab: Lab, now: datetime) -> None:
    server = TlsEndpointServer(
        lab.cert("ServiceFabric", "new").issued,
        (lab.ca,),
        min_version=ssl.TLSVersion.TLSv1,
        max_version=ssl.TLSVersion.TLSv1,
    )
    server.context.set_ciphers("DEFAULT:@SECLEVEL=0")  # what an unpatched old server still accepts
    with server:
        observation = _collect(lab, now, _endpoint("legacy", STAR_NAME, server.port))
    probe = _facts(observation).probes[0]
    assert probe.success and probe.tls_version == "TLS 1.0" and probe.chain_valid


def test_no_tls_version_in_common_is_a_tls_error(lab: Lab, now: datetime) -> None:
    # A server stuck on a version the client build refuses; the probe says so rather than hanging.
    with TlsEndpointServer(
        lab.cert("ServiceFabric", "new").issued,
        min_version=ssl.TLSVersion.TLSv1_3,
    ) as server:
        collector = TlsCollector([_endpoint("modern", STAR_NAME, server.port)], lab.ca_bundle, clock=lambda: now)
        collector.prober.plain.set_max_proto_version(SSL.TLS1_2_VERSION)  # the client offers TLS 1.2 at most
        with pytest.raises(CollectorError) as err:
            collector.collect("modern", Deadline.after(5))
    assert err.value.reason is Reason.TLS_ERROR and "TLS version" in err.value.message


def test_refused_and_silent_endpoints_map_to_their_reasons(lab: Lab, now: datetime, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(CollectorError) as refused:
        _collect(lab, now, _endpoint("down", STAR_NAME, port))
    assert refused.value.reason is Reason.CONNECTION_REFUSED

    # A listener that never answers the ClientHello: the kernel accepts, nobody speaks.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(CollectorError) as hung:
            _collect(lab, now, _endpoint("hung", STAR_NAME, silent.getsockname()[1]), timeout=0.5)
    assert hung.value.reason is Reason.TIMEOUT and "no answer during the TLS handshake" in hung.value.message


def test_an_unresolvable_name_is_unreachable(lab: Lab, now: datetime) -> None:
    def resolver(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    endpoint = Endpoint("ghost", "ghost.contoso.lab", 443)
    with pytest.raises(CollectorError) as err:
        _collect(lab, now, endpoint, resolver=resolver)
    assert err.value.reason is Reason.UNREACHABLE and "cannot resolve" in err.value.message


def _two_nodes(lab: Lab, certs: Sequence[Issued]) -> list[TlsEndpointServer]:
    hosts = ("127.0.0.1", "127.0.0.2")

    def make(host: str, port: int) -> TlsEndpointServer:
        return TlsEndpointServer(certs[hosts.index(host)], (lab.ca,), host=host, port=port)

    return same_port_on(hosts, make)


def test_every_address_behind_a_name_is_probed_and_differences_show(lab: Lab, now: datetime) -> None:
    old, new = lab.cert("ServiceFabric", "old").issued, lab.cert("ServiceFabric", "new").issued
    servers = _two_nodes(lab, [new, old])
    try:
        port = servers[0].port
        resolved: list[tuple[str, int]] = []

        def resolver(host: str, asked_port: int) -> Sequence[str]:
            resolved.append((host, asked_port))
            return ("127.0.0.1", "127.0.0.2")

        observation = _collect(lab, now, Endpoint("gateway", STAR_NAME, port, role="ServiceFabric"), resolver=resolver)
    finally:
        for server in servers:
            server.stop()
    assert resolved == [(STAR_NAME, port)]
    facts = _facts(observation)
    assert [p.address for p in facts.probes] == ["127.0.0.1", "127.0.0.2"]
    assert facts.inconsistent
    assert facts.leaves() == {new.thumbprint: ["127.0.0.1"], old.thumbprint: ["127.0.0.2"]}
    leaves = {
        (o.node, o.thumbprint) for o in observation.certificates if o.certificate.subject_cn != "Contoso Lab Root CA"
    }
    assert leaves == {("127.0.0.1", new.thumbprint), ("127.0.0.2", old.thumbprint)}
    assert {(r.node, r.thumbprint) for r in observation.references} == leaves


def test_one_failing_node_is_a_problem_not_a_failed_target(lab: Lab, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,)) as server:
        # Nothing listens on 127.0.0.3 at that port.
        endpoint = _endpoint("aos", STAR_NAME, server.port, addresses=("127.0.0.1", "127.0.0.3"))
        observation = _collect(lab, now, endpoint)
    facts = _facts(observation)
    assert [p.success for p in facts.probes] == [True, False]
    assert facts.probes[1].reason is Reason.CONNECTION_REFUSED
    assert not facts.inconsistent, "a node without a certificate does not disagree"
    (problem,) = observation.problems
    assert problem.reason is Reason.CONNECTION_REFUSED and problem.message.startswith("127.0.0.3:")


def test_the_chain_is_judged_at_the_injected_clock(lab: Lab, now: datetime) -> None:
    star = lab.cert("ServiceFabric", "old").issued  # 12 days left
    with TlsEndpointServer(star, (lab.ca,)) as server:
        endpoint = _endpoint("aos", STAR_NAME, server.port)
        today = _facts(_collect(lab, now, endpoint)).probes[0]
        later = _facts(_collect(lab, now + timedelta(days=13), endpoint)).probes[0]
    assert today.chain_valid and later.chain_error == "expired"


def test_a_missing_ca_bundle_loses_validation_not_certificates(lab: Lab, now: datetime, tmp_path: Path) -> None:
    star = lab.cert("ServiceFabric", "new").issued
    with TlsEndpointServer(star, (lab.ca,)) as server:
        endpoint = _endpoint("aos", STAR_NAME, server.port, ca_bundle=tmp_path / "missing.pem")
        observation = _collect(lab, now, endpoint)
    probe = _facts(observation).probes[0]
    assert probe.success and probe.chain_valid is None
    assert observation.certificates[0].thumbprint == star.thumbprint
    assert [p.reason for p in observation.problems] == [Reason.NOT_FOUND]
    assert "missing.pem" in observation.problems[0].message


def test_sql_server_endpoints_by_kind(lab: Lab, now: datetime) -> None:
    sql = lab.cert("SQLCluster", "new").issued
    with TdsServer(sql, (lab.ca,)) as server:
        tds = _collect(lab, now, _endpoint("sql", "sql1.contoso.lab", server.port, kind="tds", role="SQLCluster"))
        tds8 = _collect(lab, now, _endpoint("sql8", "sql1.contoso.lab", server.port, kind="tds8"))
    for observation, version, encryption in ((tds, "TLS 1.2", "on"), (tds8, "TLS 1.3", "strict")):
        probe = _facts(observation).probes[0]
        assert probe.success and probe.chain_valid and probe.tls_version == version
        assert (probe.server_version, probe.encryption) == ("16.0.1000", encryption)
        assert observation.certificates[0].thumbprint == sql.thumbprint
    assert _facts(tds8).probes[0].alpn == "tds/8.0"
    assert [r.role for r in tds.references] == ["SQLCluster"]


def test_metric_specs_describe_each_address(lab: Lab, now: datetime) -> None:
    expired = lab.service_certs["tls-expired"]
    with TlsEndpointServer(expired, (lab.ca,)) as server:
        endpoint = _endpoint("expired", "expired.contoso.lab", server.port, addresses=("127.0.0.1", "127.0.0.3"))
        observation = _collect(lab, now, endpoint)
    samples = {spec.name: list(spec.samples(observation.facts, "expired")) for spec in TlsCollector.metrics}
    assert samples["certmon_tls_probe_success"] == [
        (("expired", "127.0.0.1", "tls"), 1.0),
        (("expired", "127.0.0.3", "tls"), 0.0),
    ]
    assert samples["certmon_tls_chain_valid"] == [(("expired", "127.0.0.1", "expired"), 0.0)]
    ((labels, _),) = samples["certmon_tls_version_info"]
    assert labels[:3] == ("expired", "127.0.0.1", "TLS 1.3")
    assert samples["certmon_tls_chain_earliest_expiry_timestamp_seconds"] == [
        (("expired", "127.0.0.1"), expired.cert.not_valid_after_utc.timestamp())
    ]
    assert samples["certmon_tds_prelogin_info"] == []
    spec = next(s for s in TlsCollector.metrics if s.name == "certmon_tls_probe_success")
    assert spec.stale_value == 0.0
