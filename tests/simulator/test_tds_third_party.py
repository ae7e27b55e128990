"""python-tds (pytds), a TDS client nobody here wrote, through the simulated SQL Server's pre-login and TLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytds
import pytest

from simulator.lab import Lab
from simulator.pki import days, make_certificate
from simulator.tds import TdsServer


@pytest.fixture
def sql(lab: Lab) -> Iterator[TdsServer]:
    with TdsServer(lab.cert("SQLCluster", "new").issued, (lab.ca,)) as server:
        yield server


def _connect(server: TdsServer, cafile: str, **kwargs: object) -> None:
    pytds.connect(  # type: ignore[call-overload]
        dsn="127.0.0.1",
        port=server.port,
        user="certmon",
        password="not-a-real-password",
        cafile=cafile,
        validate_host=False,
        login_timeout=10,
        timeout=10,
        **kwargs,
    )


def test_pytds_negotiates_tls_inside_prelogin_and_gets_sql_servers_login_error(lab: Lab, sql: TdsServer) -> None:
    with pytest.raises(pytds.tds_base.OperationalError) as caught:
        _connect(sql, str(lab.ca_bundle))
    # pytds sent PRELOGIN, completed TLS inside PRELOGIN packets against the lab CA, sent LOGIN7
    # over TLS and parsed the ERROR token the server answered with.
    assert "Login failed for user 'certmon'." in str(caught.value)
    assert sql.handshakes == 1 and sql.logins == ["certmon"]
    (prelogin,) = sql.prelogins
    assert list(prelogin)[:2] == [0, 1]  # VERSION first, then ENCRYPTION (MS-TDS 2.2.6.5)


def test_pytds_refuses_a_server_certificate_from_another_ca(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> None:
    other_ca = make_certificate("Other Root", not_before=days(lab.now, -1), not_after=days(lab.now, 30), is_ca=True)
    bundle = tmp_path_factory.mktemp("ca") / "other.pem"
    bundle.write_bytes(other_ca.pem)
    with TdsServer(lab.cert("SQLCluster", "new").issued, (lab.ca,)) as server:
        with pytest.raises(Exception) as caught:
            _connect(server, str(bundle))
        assert "Login failed" not in str(caught.value)
        assert server.logins == []
