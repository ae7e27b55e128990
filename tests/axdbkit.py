"""AXDB on PostgreSQL (through psqlODBC) for the tests: seeded rows, and the lab configured to read it.

Shared by the SQL source, remediation, security and reliability tests, which each used to seed their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import yaml

from collectors.sql.queries import CONFIG_KEY, FLIGHT_NAME
from simulator.axdb import AxdbWriter
from simulator.lab import Lab
from simulator.postgres import PgEnvironment

OTHER_PARTITION = 5637144577
#: the sources a lab keeps when only the SQL source (and the nodes' stores) should answer
NOT_SQL = ("certfolder", "agentshare", "credentials", "clusterconfig", "localagent")


@contextmanager
def axdb_writer(pg: PgEnvironment) -> Iterator[AxdbWriter]:
    """A writer of AXDB rows over a superuser connection, closed afterwards."""
    connection = pg.admin(pg.axdb)
    try:
        yield AxdbWriter(connection, "postgresql")
    finally:
        connection.close()


def seed_reencryption_enabled(pg: PgEnvironment) -> None:
    """The initial partition with the re-encryption flight and key set (the runbook's step done)."""
    with axdb_writer(pg) as writer:
        writer.partition()
        writer.flight(FLIGHT_NAME, 1)
        writer.config(CONFIG_KEY, "True")


def seed_reencryption_off(pg: PgEnvironment) -> None:
    """Two partitions, the key present and off, the flight enabled in the other partition only."""
    with axdb_writer(pg) as writer:
        writer.partition()
        writer.partition("tenant2", OTHER_PARTITION)
        writer.config(CONFIG_KEY, "False")
        # Enabled in another partition only: not what the AOS of this environment reads.
        writer.flight(FLIGHT_NAME, 1, partition=OTHER_PARTITION)


def read_axdb_on_postgres(lab: Lab, pg: PgEnvironment) -> None:
    """Point the lab's configuration at AXDB on PostgreSQL (password in a file), with the file sources off."""
    (lab.root / "secrets" / "sql-password.txt").write_text(pg.password + "\n", encoding="utf-8")
    config = yaml.safe_load(lab.config_file.read_text(encoding="utf-8"))
    sources = config["sources"]
    for name in NOT_SQL:
        sources[name]["enabled"] = False
    sources["sql"] = {
        "axdb": {
            "connection_string": pg.connection_string(pg.axdb),
            "password_file": "secrets/sql-password.txt",
            "query_timeout_seconds": 30,
        }
    }
    lab.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
