"""A private PostgreSQL server for the tests: Debian's binaries, a data folder in /tmp, a free loopback port.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` account (runuser). Clients log on over TCP with SCRAM passwords, the way certmon
logs on to SQL Server with SQL authentication; the unix socket stays inside the data folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from simulator.secretfile import write_secret

SUPERUSER = "postgres"
DRIVER = "PostgreSQL Unicode"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin, or the folder of initdb on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def odbc_driver_installed() -> bool:
    """True when unixODBC knows the psqlODBC driver."""
    try:
        import pyodbc
    except ImportError:
        return False
    return DRIVER in pyodbc.drivers()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """initdb, pg_ctl start/stop, and ODBC connection strings for databases and roles on it."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise FileNotFoundError("PostgreSQL is not installed (Debian package postgresql)")
        self.bin_dir = found
        self.root = Path(tempfile.mkdtemp(prefix="certmon-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self._as_user: list[str] = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # PostgreSQL will not run as root; its own account owns the folder instead.
            shutil.chown(self.root, user=SUPERUSER)
            self._as_user = ["runuser", "-u", SUPERUSER, "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        """initdb (first time) and start on a free port; retries when the port was taken meanwhile."""
        if not self.data.exists():
            pwfile = self.root / "pw"
            write_secret(pwfile, self.password + "\n")
            if self._as_user:
                shutil.chown(pwfile, user=SUPERUSER)
            self._run(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "-A",
                "scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
            )
            pwfile.unlink()
        last: subprocess.CalledProcessError | None = None
        for _ in range(5):
            self.port = _free_port()
            options = f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off"
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-o",
                    options,
                    "start",
                )
                return self
            except subprocess.CalledProcessError as err:
                last = err
        raise RuntimeError(f"PostgreSQL did not start; see {self.log}") from last

    def stop(self) -> None:
        """Stop the server (immediately: the data is thrown away) and remove its folder."""
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def connection_string(self, database: str, user: str = SUPERUSER, *, password: str | None = None) -> str:
        """An ODBC connection string; the password only when given (certmon adds its own)."""
        text = f"Driver={{{DRIVER}}};Server=127.0.0.1;Port={self.port};Database={database};Uid={user};"
        return text + (f"Pwd={{{password}}};" if password is not None else "")

    def admin(self, database: str = "postgres") -> Any:
        """A pyodbc connection as the superuser, autocommit on."""
        import pyodbc

        return pyodbc.connect(self.connection_string(database, password=self.password), autocommit=True, timeout=10)

    def execute(self, database: str, *statements: str) -> None:
        """Run statements as the superuser."""
        connection = self.admin(database)
        try:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
        finally:
            connection.close()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


USERS_GROUP = "certmon_users"
TEMPLATES = ("axdb_template", "orchestratordata_template")


def _ensure_templates(server: PostgresServer) -> None:
    """Template databases with the tables and grants, copied for every environment (much faster than DDL)."""
    if getattr(server, "_templates_ready", False):
        return
    from simulator.axdb import axdb_ddl, orchestrator_ddl

    server.execute("postgres", f"CREATE ROLE {USERS_GROUP} NOLOGIN")
    for database, ddl in zip(TEMPLATES, (axdb_ddl("postgresql"), orchestrator_ddl("postgresql")), strict=True):
        server.execute("postgres", f"CREATE DATABASE {database}")
        grants = [f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {USERS_GROUP}"]
        if database == TEMPLATES[0]:
            grants.append(f"GRANT USAGE ON SCHEMA msdb TO {USERS_GROUP}")
            grants.append(f"GRANT SELECT ON msdb.backupset TO {USERS_GROUP}")
        server.execute(database, *ddl, *grants)
    server._templates_ready = True  # type: ignore[attr-defined]


class PgEnvironment:
    """A fresh AXDB and OrchestratorData pair on the server, and a login that owns nothing but may use them."""

    def __init__(self, server: PostgresServer, suffix: str) -> None:
        _ensure_templates(server)
        self.server = server
        self.axdb = f"axdb_{suffix}"
        self.orchestrator = f"orchestratordata_{suffix}"
        self.user = f"certmon_{suffix}"
        self.password = secrets.token_urlsafe(16)
        server.execute(
            "postgres",
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}' IN ROLE {USERS_GROUP}",
            f"CREATE DATABASE {self.axdb} TEMPLATE {TEMPLATES[0]}",
            f"CREATE DATABASE {self.orchestrator} TEMPLATE {TEMPLATES[1]}",
        )

    def connection_string(self, database: str) -> str:
        """ODBC connection string of the login, without its password."""
        return self.server.connection_string(database, self.user)

    def admin(self, database: str) -> Any:
        """A superuser connection (autocommit) to seed or inspect rows."""
        return self.server.admin(database)
