"""The Prometheus exporter-toolkit web configuration: TLS server settings and bcrypt basic auth."""

from __future__ import annotations

import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from daemon.settings import ConfigError

CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
}
TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}
HTTP_KEYS = {"http2", "headers"}
# A hash that no password matches, checked for unknown users so timing does not reveal names.
_DUMMY_HASH = bcrypt.hashpw(b"certmon-unknown-user", bcrypt.gensalt(rounds=10))


@dataclass
class WebConfig:
    """A parsed web-config file."""

    path: str = ""
    tls: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: dict[bytes, bool] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tls_enabled(self) -> bool:
        """True when TLS is configured."""
        return bool(self.tls)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side SSL context, or None when TLS is off."""
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.tls.get("min_version", "TLS12")]
        if "max_version" in self.tls:
            context.maximum_version = TLS_VERSIONS[self.tls["max_version"]]
        try:
            context.load_cert_chain(self.tls["cert_file"], self.tls["key_file"])
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"{self.path}: tls_server_config: cannot load cert_file/key_file: {err}") from err
        auth = self.tls.get("client_auth_type", "NoClientCert")
        context.verify_mode = CLIENT_AUTH_TYPES[auth]
        if "client_ca_file" in self.tls:
            try:
                context.load_verify_locations(self.tls["client_ca_file"])
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"{self.path}: tls_server_config: client_ca_file: {err}") from err
        return context

    def check(self, user: str, password: str) -> bool:
        """Verify basic-auth credentials; results are cached by a hash, never the password."""
        if not self.users:
            return True
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            cached = self._verified.get(key)
        if cached is not None:
            return cached
        stored = self.users.get(user)
        try:
            ok = bcrypt.checkpw(password.encode(), stored if stored is not None else _DUMMY_HASH)
        except ValueError:
            ok = False
        ok = ok and stored is not None
        with self._lock:
            if len(self._verified) > 1024:
                self._verified.clear()
            self._verified[key] = ok
        return ok


def _expect_keys(section: Any, allowed: set[str], where: str, path: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {where}: expected a mapping")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{path}: {where}: unknown field {unknown[0]!r}")
    return section


def load_web_config(path: Path | None) -> WebConfig:
    """Parse a web-config file; relative paths are relative to the file, as exporter-toolkit does."""
    if path is None:
        return WebConfig()
    name = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"{name}: web config file not found") from err
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{name}: cannot read web config: {err}") from err
    top = _expect_keys(data, TOP_KEYS, "top level", name)
    tls = dict(_expect_keys(top.get("tls_server_config"), TLS_KEYS, "tls_server_config", name))
    http = _expect_keys(top.get("http_server_config"), HTTP_KEYS, "http_server_config", name)
    base = path.parent
    if tls:
        for key in ("cert_file", "key_file"):
            if not tls.get(key):
                raise ConfigError(f"{name}: tls_server_config: {key} is required when TLS is configured")
        for key in ("cert_file", "key_file", "client_ca_file"):
            if tls.get(key):
                tls[key] = str(base / tls[key])
        auth = tls.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH_TYPES:
            raise ConfigError(f"{name}: tls_server_config.client_auth_type: unknown value {auth!r}")
        if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not tls.get("client_ca_file"):
            raise ConfigError(f"{name}: tls_server_config.client_ca_file is required for {auth}")
        for key in ("min_version", "max_version"):
            if key in tls and tls[key] not in TLS_VERSIONS:
                raise ConfigError(f"{name}: tls_server_config.{key}: unknown TLS version {tls[key]!r}")
    users: dict[str, bytes] = {}
    raw_users = top.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        raise ConfigError(f"{name}: basic_auth_users: expected a mapping of user to bcrypt hash")
    for user, hashed in raw_users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{name}: basic_auth_users.{user}: expected a bcrypt hash")
        users[str(user)] = hashed.encode()
    headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}
    config = WebConfig(path=name, tls=tls, headers=headers, users=users)
    config.ssl_context()  # fail at start-up, not at the first scrape
    return config
