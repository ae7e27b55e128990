"""The daemon's HTTP listener: routes, TLS and basic auth from the web config, /metrics and /healthz."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from daemon.exposition import Exposition
from daemon.webconfig import WebConfig

log = logging.getLogger("certmon.http")

MAX_BODY = 1024 * 1024


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    client_cert: dict[str, Any] | None = None
    user: str = ""
    peer: str = ""
    #: the client certificate's DER when the TLS layer verified one against the client CA
    client_cert_der: bytes | None = None

    def json(self) -> Any:
        """The body parsed as JSON ({} when empty)."""
        return json.loads(self.body or b"{}")


@dataclass
class Response:
    """What a handler answers."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        """A JSON response."""
        return cls(status, json.dumps(payload, indent=1, default=str).encode(), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        """A plain-text response."""
        return cls(status, text.encode())

    @classmethod
    def html(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """An HTML response."""
        return cls(status, text.encode(), "text/html; charset=utf-8", dict(headers or {}))


Handler = Callable[[Request], Response]


class Router:
    """Method + path pattern (segments like `{name}`) to handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register a handler; `{name}` matches one path segment."""
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        self._routes.append((method.upper(), re.compile(regex), handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, params, path_known): path_known lets the server answer 405 rather than 404."""
        known = False
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            known = True
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, found.groupdict(), True
        return None, {}, known


def exposition_handler(latest: Callable[[], Exposition]) -> Handler:
    """Serve the latest pre-rendered exposition: no rendering or compression per scrape."""

    def handle(request: Request) -> Response:
        body, content_type, gzipped = latest().body(
            request.headers.get("accept", ""), request.headers.get("accept-encoding", "")
        )
        headers = {"Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, content_type, headers)

    return handle


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """Render the registry in the format the scraper asks for, gzip when accepted."""

    def handle(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(registry)
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, content_type, headers)

    return handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: HttpServer) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshakes happen on the request thread, so a slow client cannot stall accept()."""
        context = self.owner.ssl_context
        if context is not None:
            request.settimeout(10)
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as err:
                log.debug("TLS handshake with %s failed: %s", client_address, err)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log handler crashes without printing to stderr."""
        log.exception("HTTP request from %s failed", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30
    server_version = "certmon"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**self.server.owner.web_config.headers, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _dispatch(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        user = ""
        if owner.web_config.users:
            user = self._basic_user(headers.get("authorization", ""))
            if not user:
                if owner.on_refused is not None:
                    owner.on_refused(self.command, url.path, self.client_address[0])
                self._send(Response(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="certmon"'}))
                return
        handler, params, known = owner.router.match(self.command, url.path)
        if handler is None:
            self._send(Response.text("method not allowed\n", 405) if known else Response.text("not found\n", 404))
            return
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._send(Response.text("request body too large\n", 413))
            return
        body = self.rfile.read(length) if length else b""
        client_cert = client_der = None
        if isinstance(self.connection, ssl.SSLSocket):
            client_cert = self.connection.getpeercert() or None
            # getpeercert() is empty unless the certificate was verified; only then is the DER trusted.
            client_der = self.connection.getpeercert(binary_form=True) if client_cert else None
        request = Request(
            self.command,
            url.path,
            parse_qs(url.query),
            headers,
            body,
            params,
            client_cert,
            user,
            self.client_address[0],
            client_der,
        )
        try:
            response = handler(request)
        except Exception:
            log.exception("handler for %s %s failed", self.command, url.path)
            response = Response.text("internal error\n", 500)
        self._send(response)

    def _basic_user(self, header: str) -> str:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return ""
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return user if self.server.owner.web_config.check(user, password) else ""


class HttpServer:
    """A threaded HTTP(S) listener serving a Router."""

    def __init__(
        self,
        address: str,
        port: int,
        web_config: WebConfig,
        router: Router,
        on_refused: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.web_config = web_config
        self.router = router
        #: told (method, path, peer) of each request refused for want of basic-auth credentials
        self.on_refused = on_refused
        self.ssl_context = web_config.ssl_context()
        self._server = _Server((address, port), self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the listener."""
        host = str(self._server.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
