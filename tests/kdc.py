"""A real MIT Kerberos KDC for tests: its own realm, database and keytabs in a temp dir, on a free loopback port.

Host names are never resolved through DNS for Kerberos here (`rdns = false`,
`dns_canonicalize_hostname = false`): a node listening on 127.0.0.1 and reached as `localhost` has the
SPN `HTTP/localhost`, so /etc/hosts is left alone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

REALM = "CERTMON.TEST"
SERVICE_ACCOUNT = "svc-certmon"
NODE_HOST = "localhost"
_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")


def missing_tools() -> list[str]:
    """The MIT Kerberos programs this machine lacks (Debian: krb5-kdc, krb5-admin-server, krb5-user)."""
    return [tool for tool in TOOLS if shutil.which(tool, path=_SBIN) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MitKdc:
    """A KDC process with principals for the service account and the node's HTTP/ and WSMAN/ SPNs."""

    def __init__(self, directory: Path, clock_offset: str = "") -> None:
        self.dir = directory
        #: run krb5kdc this far from the real time (`faketime` offset such as "+1h"): a skewed KDC
        self.clock_offset = clock_offset
        self.port = _free_port()
        self.krb5_conf = directory / "krb5.conf"
        self.kdc_conf = directory / "kdc.conf"
        self.client_keytab = directory / "svc-certmon.keytab"
        self.node_keytab = directory / "node.keytab"
        self.log = directory / "kdc.log"
        self._process: subprocess.Popen[bytes] | None = None

    # -- set-up ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for the MIT tools (and for GSSAPI in this process)."""
        return {
            **os.environ,
            "PATH": _SBIN,
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.kdc_conf),
        }

    def start(self) -> MitKdc:
        """Create the realm, the principals and keytabs, and start krb5kdc; returns once it accepts TCP."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f" default_realm = {REALM}\n"
            " dns_lookup_kdc = false\n dns_lookup_realm = false\n"
            " rdns = false\n dns_canonicalize_hostname = false\n"
            " udp_preference_limit = 1\n forwardable = false\n"
            # Windows clients do not move their clock to the KDC's; neither does this one.
            " kdc_timesync = 0\n"
            f"[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{self.port}\n }}\n"
            f"[domain_realm]\n {NODE_HOST} = {REALM}\n .certmon.test = {REALM}\n",
            encoding="utf-8",
        )
        self.kdc_conf.write_text(
            f"[kdcdefaults]\n kdc_ports = {self.port}\n kdc_tcp_ports = {self.port}\n"
            f"[realms]\n {REALM} = {{\n"
            f"  database_name = {self.dir / 'principal'}\n"
            f"  key_stash_file = {self.dir / 'stash'}\n"
            f"  acl_file = {self.dir / 'kadm5.acl'}\n"
            "  max_life = 1h\n max_renewable_life = 0\n"
            "  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            " }\n"
            f"[logging]\n kdc = FILE:{self.log}\n",
            encoding="utf-8",
        )
        (self.dir / "kadm5.acl").write_text("", encoding="utf-8")
        self._run("kdb5_util", "create", "-s", "-r", REALM, "-P", secrets.token_hex(16))
        for principal in (SERVICE_ACCOUNT, f"HTTP/{NODE_HOST}", f"WSMAN/{NODE_HOST}"):
            self.admin(f"addprinc -randkey {principal}")
        self.admin(f"ktadd -k {self.node_keytab} HTTP/{NODE_HOST} WSMAN/{NODE_HOST}")
        self.admin(f"ktadd -k {self.client_keytab} {SERVICE_ACCOUNT}")
        launcher = [str(shutil.which("faketime")), "-f", self.clock_offset] if self.clock_offset else []
        self._process = subprocess.Popen(
            [*launcher, str(shutil.which("krb5kdc", path=_SBIN)), "-n", "-r", REALM],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening(deadline=time.monotonic() + 30)
        return self

    def admin(self, query: str) -> str:
        """Run one kadmin.local query against the realm's database."""
        return self._run("kadmin.local", "-r", REALM, "-q", query)

    def kinit_keytab(self, ccache: Path, lifetime: str = "1h") -> None:
        """Put a ticket for the service account from its keytab into `ccache` (as `kinit -k` does)."""
        self._run("kinit", "-l", lifetime, "-c", f"FILE:{ccache}", "-k", "-t", str(self.client_keytab), SERVICE_ACCOUNT)

    def list_tickets(self, ccache: Path) -> str:
        """`klist` of a credential cache: the principals it holds tickets for."""
        return self._run("klist", "-c", f"FILE:{ccache}")

    def ticket_valid(self, ccache: Path) -> bool:
        """True while `ccache` holds an unexpired ticket (`klist -s`)."""
        klist = shutil.which("klist", path=_SBIN)
        assert klist is not None
        return subprocess.run([klist, "-s", "-c", f"FILE:{ccache}"], env=self.env(), check=False).returncode == 0

    def _run(self, tool: str, *args: str) -> str:
        path = shutil.which(tool, path=_SBIN)
        assert path is not None, f"{tool} is not installed"
        done = subprocess.run([path, *args], env=self.env(), capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace')[-500:]}")
        return done.stdout.decode(errors="replace")

    def _wait_listening(self, deadline: float) -> None:
        """Wait until the KDC accepts TCP connections, or it exits."""
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"krb5kdc exited with {self._process.returncode}: {stderr[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("krb5kdc did not listen within 30 seconds")

    # -- tear-down ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the KDC process."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def __enter__(self) -> MitKdc:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
