"""The status page and API answer only Host names they know, and refused requests cannot flood the audit.

DNS rebinding: a page on another site gets the browser to send requests to the loopback
listener under the attacker's own host name; certmon answers 421 to any name it was not
configured with (IP literals always work). Amplification: refused requests are audited at a
bounded rate, and a long request path is cut in the record.
"""

from __future__ import annotations

import http.client
from datetime import datetime
from pathlib import Path

import pytest

from daemon.api import ApiServer
from daemon.apirefusals import BURST, MAX_PATH
from remediations.audit import AUDIT_FILE
from simulator.lab import Lab
from tests.daemon.apikit import NAME, TOKEN_FILE, api_records, configure_api, running, write_token

APPLY = f"/api/remediations/{NAME}/apply"


@pytest.fixture
def api_lab(cli_lab: Lab) -> Lab:
    write_token(cli_lab)
    configure_api(cli_lab, token_file=TOKEN_FILE, allowed_hosts=["certmon.ops.example"])
    return cli_lab


def _request(api: ApiServer, method: str, path: str, host: str, body: bytes = b"") -> tuple[int, bytes]:
    assert api.http is not None
    connection = http.client.HTTPConnection("127.0.0.1", api.http.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        if body:
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_foreign_host_name_is_refused_everywhere(api_lab: Lab, now: datetime) -> None:
    with running(api_lab, now) as daemon:
        assert daemon.api is not None and daemon.api.http is not None
        port = daemon.api.http.port
        foreign = {
            path: _request(daemon.api, method, path, f"rebind.attacker.example:{port}")[0]
            for method, path in (("GET", "/"), ("GET", "/api/status"), ("POST", f"/api/remediations/{NAME}/plan"))
        }
        known = {
            host: _request(daemon.api, "GET", "/api/status", host)[0]
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "certmon.ops.example", "LOCALHOST.")
        }
    assert foreign == dict.fromkeys(foreign, 421)
    assert known == dict.fromkeys(known, 200)
    misdirected = [r for r in api_records(api_lab) if r["outcome"] == "misdirected"]
    assert len(misdirected) == 3 and all(r["detail"]["status"] == 421 for r in misdirected)


def test_refused_requests_do_not_amplify_into_the_audit(api_lab: Lab, now: datetime) -> None:
    """100 unauthenticated applies with 60 KB bodies and 15 KB paths leave a few short records."""
    body = b'{"pad": "' + b"x" * 60_000 + b'"}'
    long_path = "/api/remediations/" + "n" * 15_000 + "/apply"
    audit = Path(api_lab.data_dir) / AUDIT_FILE
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        before = audit.stat().st_size if audit.exists() else 0
        statuses = [_request(daemon.api, "POST", long_path, "localhost", body)[0] for _ in range(100)]
    assert statuses == [401] * 100
    records = api_records(api_lab)
    written = [r for r in records if "status" in r["detail"]]
    summaries = [r for r in records if "status" not in r["detail"]]
    assert len(written) == BURST
    assert sum(r["detail"]["suppressed"] for r in summaries) == 100 - BURST
    assert all(len(r["detail"]["path"]) <= MAX_PATH and len(r["remediation"]) <= MAX_PATH for r in written)
    grown = audit.stat().st_size - before
    print(f"audit grew {grown} bytes for 100 refused 75 KB requests")
    assert grown < 16 * 1024
