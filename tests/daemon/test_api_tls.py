"""The API over TLS: client certificates that may apply, the allow lists, and the settings it refuses."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import urllib.error
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import yaml

from daemon.api import check_api_settings
from daemon.app import Daemon
from daemon.settings import ConfigError, load_settings
from daemon.webconfig import load_web_config
from simulator.lab import Lab
from simulator.pki import Issued, make_certificate
from tests.daemon.apikit import NAME, TOKEN_FILE, api_records, audit_file, call, configure_api, running, write_token

APPLY = f"/api/remediations/{NAME}/apply"


@dataclass
class Pki:
    """A CA, the API's server certificate, and client certificates."""

    folder: Path
    ca: Issued
    alice: Issued
    mallory: Issued

    def client(self, who: Issued | None) -> ssl.SSLContext:
        """A client context trusting the CA, presenting `who` when given."""
        context = ssl.create_default_context(cafile=str(self.folder / "ca.pem"))
        if who is not None:
            name = who.cert.subject.rfc4514_string().replace("=", "_")
            cert, key = self.folder / f"{name}.pem", self.folder / f"{name}.key"
            cert.write_bytes(who.pem)
            key.write_bytes(who.key_pem)
            context.load_cert_chain(cert, key)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    # The TLS layer checks validity against the real clock, not the lab's fixed moment.
    now = datetime.now(UTC)
    valid = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}
    ca = make_certificate("certmon API test CA", is_ca=True, **valid)
    server = make_certificate("certmon-api", issuer=ca, ip_addresses=("127.0.0.1",), dns_names=("localhost",), **valid)
    alice = make_certificate("alice", issuer=ca, server=False, **valid)
    mallory = make_certificate("mallory", server=False, **valid)  # self-signed: not from the client CA
    folder = tmp_path / "pki"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca.pem)
    (folder / "server.pem").write_bytes(server.pem)
    (folder / "server.key").write_bytes(server.key_pem)
    return Pki(folder, ca, alice, mallory)


def _web_config(lab: Lab, pki: Pki, **extra: object) -> Path:
    path = lab.root / "api-web.yml"
    tls = {
        "cert_file": str(pki.folder / "server.pem"),
        "key_file": str(pki.folder / "server.key"),
        "client_auth_type": "VerifyClientCertIfGiven",
        "client_ca_file": str(pki.folder / "ca.pem"),
    }
    path.write_text(yaml.safe_dump({"tls_server_config": tls, **extra}), encoding="utf-8")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_verified_client_certificate_applies(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki)))
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None and daemon.api.url.startswith("https://")
        anonymous = call(daemon.api.url + "/api/status", context=pki.client(None))
        refused = call(daemon.api.url + APPLY, "POST", context=pki.client(None))
        applied = call(daemon.api.url + APPLY, "POST", context=pki.client(pki.alice))
    assert anonymous.status == 200, "reading needs no client certificate with VerifyClientCertIfGiven"
    assert (
        refused.status == 401 and "a client certificate signed by the web config's client CA" in refused.json()["error"]
    )
    assert applied.status == 200 and applied.json()["outcome"] == "applied", applied.body
    who = f"CN=alice ({pki.alice.thumbprint})"
    assert {r["actor"] for r in audit_file(cli_lab) if r["mode"] == "apply"} == {f"api:{who}@127.0.0.1"}
    assert api_records(cli_lab)[-1]["detail"]["auth"] == "client-certificate"


def test_a_certificate_outside_the_allow_list_is_forbidden(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki)), client_subjects=["CN=bob,O=Contoso"])
    before = _sha(cli_lab.localagent_config)
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + APPLY, "POST", context=pki.client(pki.alice))
    assert reply.status == 403
    assert reply.json()["error"] == (
        f"client certificate CN=alice ({pki.alice.thumbprint}) is not in api.client_subjects or api.client_thumbprints"
    )
    assert _sha(cli_lab.localagent_config) == before
    [record] = api_records(cli_lab)
    assert record["outcome"] == "forbidden" and record["actor"].startswith("api:CN=alice (")


def test_the_thumbprint_allow_list(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    # Thumbprints are normalised as operators paste them from MMC: lower case, spaces, a leading U+200E.
    pasted = "\u200e" + " ".join(pki.alice.thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki)), client_thumbprints=[pasted])
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(daemon.api.url + APPLY, "POST", context=pki.client(pki.alice))
    assert reply.status == 200 and reply.json()["outcome"] == "applied"


def test_a_certificate_from_another_ca_fails_the_handshake(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki)))
    before = _sha(cli_lab.localagent_config)
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            call(daemon.api.url + APPLY, "POST", context=pki.client(pki.mallory))
    assert _sha(cli_lab.localagent_config) == before


def test_the_token_also_works_over_tls(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    write_token(cli_lab)
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki)), token_file=TOKEN_FILE)
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        reply = call(
            daemon.api.url + APPLY,
            "POST",
            headers={"Authorization": f"Bearer {(cli_lab.root / TOKEN_FILE).read_text().strip()}"},
            context=pki.client(None),
        )
    assert reply.status == 200 and reply.json()["outcome"] == "applied"


def test_off_loopback_without_tls_is_refused(cli_lab: Lab, run_cli) -> None:  # type: ignore[no-untyped-def]
    configure_api(cli_lab, listen_address="0.0.0.0")
    result = run_cli("--config", str(cli_lab.config_file), "run", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "api.listen_address: '0.0.0.0' is not a loopback address" in result.stderr
    assert "api.web_config_file" in result.stderr
    checked = run_cli("--config", str(cli_lab.config_file), "check-config")
    assert checked.returncode == 2 and "api.listen_address: '0.0.0.0' is not a loopback address" in checked.stderr


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "certmon.contoso.com"])
def test_only_loopback_goes_without_tls(cli_lab: Lab, pki: Pki, address: str) -> None:
    configure_api(cli_lab, listen_address=address)
    settings = load_settings(cli_lab.config_file)
    with pytest.raises(ConfigError, match="is not a loopback address"):
        check_api_settings(settings, load_web_config(None))
    # With TLS the same address is accepted (checked without binding it).
    check_api_settings(settings, load_web_config(_web_config(cli_lab, pki)))
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        configure_api(cli_lab, listen_address=loopback)
        check_api_settings(load_settings(cli_lab.config_file), load_web_config(None))


def test_a_taken_port_names_the_setting(cli_lab: Lab, now: datetime) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        configure_api(cli_lab, port=taken.getsockname()[1])
        daemon = Daemon(load_settings(cli_lab.config_file), clock=lambda: now)
        try:
            with pytest.raises(ConfigError, match=r"api.listen_address/api.port: cannot listen on 127.0.0.1:\d+"):
                daemon.start(schedule=False)
            assert daemon.http is None and daemon.api is None
        finally:
            daemon.stop()


def test_basic_auth_and_a_token_cannot_share_the_authorization_header(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    users = {"basic_auth_users": {"ops": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()}}
    write_token(cli_lab)
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki, **users)), token_file=TOKEN_FILE)
    daemon = Daemon(load_settings(cli_lab.config_file), clock=lambda: now)
    try:
        with pytest.raises(ConfigError, match="basic_auth_users cannot be combined with an API token"):
            daemon.start(schedule=False)
    finally:
        daemon.stop()


def test_allow_lists_need_verified_client_certificates(cli_lab: Lab, now: datetime) -> None:
    configure_api(cli_lab, client_subjects=["CN=alice"])
    daemon = Daemon(load_settings(cli_lab.config_file), clock=lambda: now)
    try:
        with pytest.raises(ConfigError, match="need a web config .* verifies client certificates"):
            daemon.start(schedule=False)
    finally:
        daemon.stop()


def test_basic_auth_names_the_reader_in_the_audit(cli_lab: Lab, pki: Pki, now: datetime) -> None:
    users = {"basic_auth_users": {"ops": bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()}}
    configure_api(cli_lab, web_config_file=str(_web_config(cli_lab, pki, **users)))
    with running(cli_lab, now) as daemon:
        assert daemon.api is not None
        anonymous = call(daemon.api.url + "/api/status", context=pki.client(None))
        page = call(daemon.api.url + "/", context=pki.client(None))
        header = {"Authorization": "Basic " + base64.b64encode(b"ops:correct horse").decode()}
        reader = call(daemon.api.url + "/api/status", headers=header, context=pki.client(None))
    assert anonymous.status == 401 and page.status == 401
    assert reader.status == 200
    records = [(r["actor"], r["outcome"], r["detail"]["path"]) for r in api_records(cli_lab)]
    # The refused API call is audited too (the page is not an API call).
    assert records == [
        ("api:anonymous@127.0.0.1", "unauthorized", "/api/status"),
        ("api:ops@127.0.0.1", "ok", "/api/status"),
    ]
