"""The remediation API applies only for the configured token, and is served off loopback only over TLS.

The basics are tested with the API (tests/daemon/test_api.py: a missing, wrong or Basic
credential answers 401 and is audited, the token never written; test_api_tls.py: client
certificates, allow-lists, `0.0.0.0`, `::`, a routable address and a host name refused without
TLS). Here: every other place a token could be smuggled in is refused and changes nothing,
a cross-site request with the right token is refused, and the addresses that look local but
are not, or that mean "every interface", are refused too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from daemon.api import check_api_settings
from daemon.apirefusals import BURST
from daemon.settings import ConfigError, load_settings
from daemon.webconfig import load_web_config
from simulator.lab import Lab
from tests.daemon.apikit import NAME, TOKEN, TOKEN_FILE, api_records, bearer, call, configure_api, running, write_token

APPLY = f"/api/remediations/{NAME}/apply"
REFUSED = {
    "no credential": ("", {}, None),
    "empty bearer": ("", {"Authorization": "Bearer "}, None),
    "wrong token": ("", bearer("x" + TOKEN[1:]), None),
    "token prefix": ("", bearer(TOKEN[:-1]), None),
    "token with a suffix": ("", bearer(TOKEN + "0"), None),
    "token upper-cased": ("", bearer(TOKEN.upper()), None),
    "another scheme": ("", {"Authorization": f"Token {TOKEN}"}, None),
    "in the query string": (f"?token={TOKEN}&access_token={TOKEN}", {}, None),
    "in a cookie": ("", {"Cookie": f"token={TOKEN}"}, None),
    "in another header": ("", {"X-Api-Token": TOKEN, "X-Auth-Token": TOKEN}, None),
    "in the body": ("", {}, {"token": TOKEN}),
}


@pytest.fixture
def api_lab(cli_lab: Lab) -> Lab:
    """The small CLI lab with an API token configured."""
    write_token(cli_lab)
    configure_api(cli_lab, token_file=TOKEN_FILE)
    return cli_lab


def test_a_token_anywhere_but_the_authorization_header_is_refused(api_lab: Lab, now: datetime) -> None:
    before = hashlib.sha256(api_lab.localagent_config.read_bytes()).hexdigest()
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        answers = {
            case: call(daemon.api.url + APPLY + query, "POST", body, headers)
            for case, (query, headers, body) in REFUSED.items()
        }
    statuses = {case: answer.status for case, answer in answers.items()}
    # A body with an unknown field is a 400 only once authorized; refused before that like the others.
    assert statuses == dict.fromkeys(REFUSED, 401), statuses
    assert hashlib.sha256(api_lab.localagent_config.read_bytes()).hexdigest() == before
    records = api_records(api_lab)
    # Refusals are audited at a bounded rate (daemon.apirefusals): the first BURST of the same
    # client and outcome in full, the rest counted in one summary written at stop.
    written = [r for r in records if "status" in r["detail"]]
    assert [r["outcome"] for r in written] == ["unauthorized"] * BURST
    assert sum(r["detail"].get("suppressed", 0) for r in records) == len(REFUSED) - BURST
    assert all(TOKEN not in str(r) for r in records)


def test_a_cross_site_request_with_the_token_is_refused(api_lab: Lab, now: datetime) -> None:
    before = hashlib.sha256(api_lab.localagent_config.read_bytes()).hexdigest()
    with running(api_lab, now) as daemon:
        assert daemon.api is not None
        answer = call(daemon.api.url + APPLY, "POST", headers={**bearer(), "Origin": "https://evil.example"})
    assert answer.status == 403 and "cross-site request" in answer.json()["error"]
    assert hashlib.sha256(api_lab.localagent_config.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    "address",
    ["", "0", "0.0.0.0", "[::]", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0", "127.0.0.1.nip.io", "localhost.", "169.254.1.1"],
)
def test_addresses_that_are_not_loopback_need_tls(cli_lab: Lab, address: str) -> None:
    configure_api(cli_lab, listen_address=address)
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_api_settings(load_settings(cli_lab.config_file), load_web_config(None))
