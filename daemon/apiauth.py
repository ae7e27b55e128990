"""Who may apply a remediation through the API: a bearer token or a verified client certificate.

Reading (the status page, `GET /api/...`, plans) needs only what the listener's web config
asks. Applying also needs one of:

* `Authorization: Bearer <token>`, compared in constant time with the token from
  `api.token_file` (re-read when the file changes, so it rotates without a restart) or
  CERTMON_API__TOKEN. The token is registered as a secret: it never reaches a log line,
  an audit record or an error message;
* a client certificate the TLS layer verified against the web config's `client_ca_file`
  (`client_auth_type` VerifyClientCertIfGiven or RequireAndVerifyClientCert) and, when
  `api.client_subjects` / `api.client_thumbprints` are set, one they list.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from collectors.certfiles import load_certificate_file
from collectors.certificate import certificate_from_der
from collectors.errors import CertificateError
from collectors.secrets import read_secret_file, register_secret
from daemon.hostcheck import HostCheck
from daemon.http import Request
from daemon.settings import ApiSettings, ConfigError
from daemon.webconfig import WebConfig

log = logging.getLogger("certmon.api")

MIN_TOKEN_LENGTH = 16
VERIFYING_AUTH_TYPES = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
GENERATE_ADVICE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; any other name or a wildcard address is not."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def api_host_check(settings: ApiSettings, web_config: WebConfig) -> HostCheck:
    """The Host names the page and API answer: see daemon.hostcheck."""
    tls_names: list[str] = []
    if web_config.tls.get("cert_file"):
        try:
            for loaded in load_certificate_file(web_config.tls["cert_file"]):
                tls_names.extend(loaded.certificate.dns_names)
        except CertificateError as err:
            log.warning("api: cannot read the TLS certificate's DNS names for the Host check: %s", err)
    return HostCheck.for_listener(settings.listen_address, settings.allowed_hosts, tls_names)


@dataclass(frozen=True)
class Decision:
    """The verdict on one apply request: allowed, or the HTTP status and reason for refusing."""

    allowed: bool
    status: int
    reason: str
    #: how the caller proved who it is: token, client-certificate, or none
    method: str = "none"
    #: who, for the audit: the certificate's subject and thumbprint; never the token
    principal: str = ""


class TokenFile:
    """The bearer token from a file, re-read when the file's size or modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._digest = b""
        self.load()

    def _read(self) -> bytes:
        try:
            token = read_secret_file(str(self.path)).strip()
        except FileNotFoundError as err:
            raise ConfigError(f"api.token_file: {self.path} does not exist") from err
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"api.token_file: cannot read {self.path}: {type(err).__name__}") from err
        register_secret(token)
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"api.token_file: the token in {self.path} is shorter than {MIN_TOKEN_LENGTH} characters; "
                + GENERATE_ADVICE
            )
        return hashlib.sha256(token.encode()).digest()

    def load(self) -> None:
        """Read the token now; ConfigError when it is missing, unreadable or too short."""
        digest = self._read()
        stat = os.stat(self.path)
        with self._lock:
            self._digest, self._stamp = digest, (stat.st_mtime_ns, stat.st_size)

    def digest(self) -> bytes:
        """SHA-256 of the current token; b'' when the file became unreadable (every token is refused)."""
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp is not None and stamp == self._stamp:
                return self._digest
        try:
            digest = self._read()
        except ConfigError as err:
            log.error("%s; refusing every bearer token until it is fixed", err)
            digest = b""
        with self._lock:
            self._digest, self._stamp = digest, stamp
        return digest


class ApplyAuth:
    """Decides whether a request may apply a remediation."""

    def __init__(self, settings: ApiSettings, web_config: WebConfig) -> None:
        self._token_file: TokenFile | None = None
        self._token_digest = b""
        if settings.token is not None:
            value = settings.token.get_secret_value().strip()
            register_secret(value)
            if len(value) < MIN_TOKEN_LENGTH:
                raise ConfigError(f"api.token: shorter than {MIN_TOKEN_LENGTH} characters; {GENERATE_ADVICE}")
            self._token_digest = hashlib.sha256(value.encode()).digest()
        elif settings.token_file is not None:
            self._token_file = TokenFile(settings.token_file)
        if (settings.token is not None or settings.token_file is not None) and web_config.users:
            raise ConfigError(
                f"api.web_config_file: {web_config.path}: basic_auth_users cannot be combined with an API token "
                "(both travel in the Authorization header); protect the API with TLS client certificates instead"
            )
        auth_type = web_config.tls.get("client_auth_type", "NoClientCert")
        self.certificates = auth_type in VERIFYING_AUTH_TYPES and bool(web_config.tls.get("client_ca_file"))
        if (settings.client_subjects or settings.client_thumbprints) and not self.certificates:
            raise ConfigError(
                "api.client_subjects/client_thumbprints need a web config (api.web_config_file) whose "
                "tls_server_config verifies client certificates: client_auth_type VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert, with client_ca_file"
            )
        self.subjects = {s.strip() for s in settings.client_subjects}
        self.thumbprints = set(settings.client_thumbprints)

    @property
    def tokens(self) -> bool:
        """True when a bearer token is configured."""
        return self._token_file is not None or bool(self._token_digest)

    @property
    def enabled(self) -> bool:
        """True when some credential can apply."""
        return self.tokens or self.certificates

    def _expected(self) -> bytes:
        return self._token_file.digest() if self._token_file is not None else self._token_digest

    def decide(self, request: Request) -> Decision:
        """Allowed, or 401 (no or wrong credential) / 403 (a credential that may not apply)."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            if not self.tokens:
                return Decision(False, 403, "bearer tokens are not accepted: api.token_file is not set", "token")
            expected = self._expected()
            given = hashlib.sha256(value.strip().encode()).digest()
            # Both sides are digests of equal length, so the comparison time says nothing about the token.
            if expected and hmac.compare_digest(given, expected):
                return Decision(True, 200, "", "token", "token")
            return Decision(False, 401, "wrong bearer token", "token")
        if request.client_cert_der is not None and self.certificates:
            try:
                cert = certificate_from_der(request.client_cert_der, "client certificate")
            except CertificateError as err:
                return Decision(False, 403, str(err), "client-certificate")
            who = f"{cert.subject} ({cert.thumbprint})"
            listed = not (self.subjects or self.thumbprints)
            if listed or cert.thumbprint in self.thumbprints or cert.subject in self.subjects:
                return Decision(True, 200, "", "client-certificate", who)
            reason = f"client certificate {who} is not in api.client_subjects or api.client_thumbprints"
            return Decision(False, 403, reason, "client-certificate", who)
        if not self.enabled:
            return Decision(
                False,
                403,
                "applying through the API is disabled: set api.token_file, or verify client certificates "
                "in api.web_config_file",
            )
        wanted = "a bearer token (Authorization: Bearer ...)" if self.tokens else ""
        if self.certificates:
            wanted += (" or " if wanted else "") + "a client certificate signed by the web config's client CA"
        return Decision(False, 401, f"apply needs {wanted}")
