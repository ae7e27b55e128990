"""SQL source and Credentials.json benchmarks, measured side by side in one run.

1. One AXDB collection (connect, the switches, the batch job and its runs, the backup history,
   one progress probe, disconnect) through certmon's SqlCollector, versus the same statements
   run with bare pyodbc on the same PostgreSQL server through psqlODBC. The ratio is certmon's
   overhead: dialect rendering, value conversion, error mapping, the progress estimate.
2. The same collection on the demo's SQLite file (Python's sqlite3), versus PostgreSQL.
3. Reading the recipients of Credentials.json (asn1crypto, no key) versus decrypting its values
   with cryptography and the private key, which certmon never does.

Run: .venv/bin/python benchmarks/bench_sql.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyodbc

from collectors.base import Deadline
from collectors.credentials import load_credentials
from collectors.sql import AxdbOptions, DatabaseSpec, Probe, SqlCollector
from collectors.sql import queries as q
from collectors.sql.dialect import Dialect
from simulator.agentshare import credentials_document, decrypt_value, encrypt_value, write_json
from simulator.axdb import LAB_PROBE_SQL, AxdbWriter, axdb_ddl, create_sqlite, open_sqlite
from simulator.pki import days, make_certificate
from simulator.postgres import PgEnvironment, PostgresServer

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
OLD, NEW = "A" * 40, "B" * 40
ROUNDS = 40


def best_of(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Median seconds of `rounds` runs (after one warm-up)."""
    action()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def seed(writer: AxdbWriter) -> None:
    writer.partition()
    writer.flight(q.FLIGHT_NAME, 1)
    writer.config(q.CONFIG_KEY, "True")
    job = writer.job(q.JOB_CAPTION, 1, NOW + timedelta(hours=12))
    for day in range(60, 0, -1):
        start = NOW - timedelta(days=day)
        writer.run(job, q.JOB_CAPTION, 4, start, start + timedelta(hours=2))
    writer.backup("axdb", "D", datetime(2026, 11, 26, 22, 0), 4)
    writer.encrypted_fields(OLD, 2000)
    writer.encrypted_fields(NEW, 3000)


def bare(connection_string: str, password: str, database: str) -> None:
    """The same statements with pyodbc alone: no dialect, conversion, estimate or error mapping."""
    connection = pyodbc.connect(f"{connection_string}PWD={{{password}}};ReadOnly=1;", timeout=10, autocommit=True)
    cursor = connection.cursor()
    cursor.execute("SELECT set_config(?, ?, ?)", ("statement_timeout", "60000", False))
    cursor.fetchall()
    for statement, parameters in (
        (q.FLIGHT_ROWS, (q.FLIGHT_NAME, q.PARTITION_KEY)),
        (q.CONFIG_ROWS, (q.CONFIG_KEY,)),
        (q.JOB_ROWS, (q.JOB_CAPTION, q.PARTITION_KEY)),
        (q.RUN_SUMMARY, (4, 3, 4, q.JOB_CAPTION, q.PARTITION_KEY)),
        (q.LAST_FULL_BACKUP, (database, "D", database, "D")),
    ):
        cursor.execute(statement.render(Dialect.POSTGRESQL), parameters)
        cursor.fetchall()
    cursor.execute(q.LAST_RUN.render(Dialect.POSTGRESQL), (q.JOB_CAPTION, q.PARTITION_KEY))
    cursor.fetchmany(1)
    cursor.execute(LAB_PROBE_SQL.format(old=OLD))
    cursor.fetchall()
    connection.close()


def main() -> dict[str, float]:
    """Print the timings and ratios; return the ratios."""
    options = AxdbOptions(probes=(Probe("fields", LAB_PROBE_SQL.format(old=OLD)),))
    print("SQL source, one AXDB collection (median of 40):")
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        pg = PgEnvironment(server, "bench")
        admin = pg.admin(pg.axdb)
        seed(AxdbWriter(admin, "postgresql"))
        admin.close()
        spec = DatabaseSpec("AXDB", pg.connection_string(pg.axdb), pg.password)
        collector = SqlCollector(spec, options=options, clock=lambda: NOW)
        ours = best_of(lambda: collector.collect("AXDB", Deadline.after(30)))
        theirs = best_of(lambda: bare(pg.connection_string(pg.axdb), pg.password, pg.axdb))
        print(f"  certmon SqlCollector on PostgreSQL:   {ours * 1000:7.2f} ms")
        print(f"  bare pyodbc, same statements:         {theirs * 1000:7.2f} ms")
        print(f"  ratio certmon / bare pyodbc:          {ours / theirs:7.2f}")
        path = Path(folder) / "AXDB.sqlite"
        create_sqlite(path, axdb_ddl("sqlite"))
        connection = open_sqlite(path)
        seed(AxdbWriter(connection, "sqlite"))
        connection.close()
        embedded = SqlCollector(DatabaseSpec("AXDB", f"sqlite:{path}"), options=options, clock=lambda: NOW)
        lite = best_of(lambda: embedded.collect("AXDB", Deadline.after(30)))
        print(
            f"  certmon SqlCollector on SQLite (demo): {lite * 1000:6.2f} ms   ratio SQLite / PostgreSQL: {lite / ours:.2f}"
        )

        old = make_certificate("axdataencipherment", not_before=days(NOW, -700), not_after=days(NOW, 30))
        new = make_certificate("axdataencipherment-new", not_before=days(NOW, -1), not_after=days(NOW, 700))
        values = {
            ("Group", f"Value{i}"): encrypt_value(f"secret {i}".encode(), [old.cert, new.cert]) for i in range(50)
        }
        credentials = Path(folder) / "Credentials.json"
        write_json(credentials, credentials_document(values))
        read = best_of(lambda: load_credentials(credentials))
        keys = [(new.cert, new.key)]
        decrypt = best_of(lambda: [decrypt_value(v, keys) for v in values.values()])  # type: ignore[arg-type]
        print("Credentials.json, 50 values with two recipients each (median of 40):")
        print(f"  recipients read (asn1crypto, no key): {read * 1000:7.2f} ms")
        print(f"  values decrypted (cryptography):      {decrypt * 1000:7.2f} ms")
        print(f"  ratio read / decrypt:                 {read / decrypt:7.2f}")
    return {"ratio": ours / theirs, "sqlite": lite / ours, "credentials": read / decrypt}


if __name__ == "__main__":
    main()
