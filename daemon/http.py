"""The daemon's HTTP listener: routes, TLS and basic auth from the web config, /metrics and /healthz."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from daemon.bodyparts import Parts
from daemon.exposition import Exposition
from daemon.hostcheck import HostCheck
from daemon.httpserve import Engine, Incoming, Limits
from daemon.httpwire import MAX_BODY
from daemon.webconfig import WebConfig

log = logging.getLogger("certmon.http")

__all__ = ["MAX_BODY", "HttpServer", "Request", "Response", "Router", "exposition_handler"]


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
    #: bytes, or parts sent one after another (the pre-rendered /metrics bodies)
    body: bytes | Parts
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


def _basic_user(web_config: WebConfig, header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""
    return user if web_config.check(user, password) else ""


class HttpServer:
    """An HTTP(S) listener serving a Router: bounded connections and deadlines (daemon.httpserve)."""

    def __init__(
        self,
        address: str,
        port: int,
        web_config: WebConfig,
        router: Router,
        *,
        on_refused: Callable[[str, str, str, int], None] | None = None,
        allowed_hosts: HostCheck | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.web_config = web_config
        self.router = router
        #: told (method, path, peer, status) of each request refused for want of basic-auth credentials (401)
        #: or for an unknown Host (421)
        self.on_refused = on_refused
        #: when set, requests whose Host header it does not accept are refused (DNS rebinding)
        self.allowed_hosts = allowed_hosts
        self.ssl_context = web_config.ssl_context()
        self.engine = Engine(
            address,
            port,
            self._dispatch,
            ssl_context=self.ssl_context,
            limits=limits,
            extra_headers=web_config.headers,
            name=f"http:{port}",
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        return int(self.engine.socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the listener."""
        host = str(self.engine.socket.getsockname()[0])
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a background thread."""
        self.engine.start()

    def stop(self) -> None:
        """Stop accepting and close idle connections; requests in progress still get their answer."""
        self.engine.stop()

    def _dispatch(self, incoming: Incoming) -> Response:
        head = incoming.head
        url = urlsplit(head.target)
        if self.allowed_hosts is not None and not self.allowed_hosts.allows(head.headers.get("host", "")):
            if self.on_refused is not None:
                self.on_refused(head.method, url.path, incoming.peer, 421)
            return Response.text("unknown Host; use a name or address this listener is configured with\n", 421)
        user = ""
        if self.web_config.users:
            user = _basic_user(self.web_config, head.headers.get("authorization", ""))
            if not user:
                if self.on_refused is not None:
                    self.on_refused(head.method, url.path, incoming.peer, 401)
                return Response(401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="certmon"'})
        handler, params, known = self.router.match(head.method, url.path)
        if handler is None:
            return Response.text("method not allowed\n", 405) if known else Response.text("not found\n", 404)
        details, der = incoming.client_cert if incoming.client_cert is not None else (None, None)
        request = Request(
            head.method,
            url.path,
            parse_qs(url.query),
            head.headers,
            incoming.body,
            params,
            details,
            user,
            incoming.peer,
            der,
        )
        try:
            return handler(request)
        except Exception:
            log.exception("handler for %s %s failed", head.method, url.path)
            return Response.text("internal error\n", 500)
