"""The status page and the remediation API, on a listener of their own (settings section `api:`).

Routes: `GET /` (the status page), `GET /healthz`, `GET /api/status`, `GET /api/remediations`,
`POST /api/remediations/{name}/plan`, `POST /api/remediations/{name}/apply`.

* Nothing here runs by itself: a plan or an apply happens only when a request asks for it.
* Plans and applies run on a small worker pool, never on the HTTP threads, through the same
  engine and context the CLI uses (`daemon.remediate`): the environment lock makes a second
  apply wait (`api.lock_wait_seconds`) and then refuse, across threads and processes. A
  client that hangs up does not interrupt an apply; it finishes and is audited.
* Every `/api/` call leaves one audit record (mode `api`) in the JSON-lines file and the state
  store, refused ones included: who (basic-auth user, client certificate or `token`, never
  the token), from where, what, and the HTTP status. Plans and applies add the engine's own
  records, with the same actor.
* The status page and `/api/status` only read the latest evaluation (`StatusCache`).
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from collectors.certificate import certificate_from_der
from collectors.errors import CertificateError
from daemon.apiauth import ApplyAuth, api_host_check, is_loopback
from daemon.apirefusals import REFUSED_OUTCOMES, RefusalLimiter, short_path
from daemon.http import HttpServer, Request, Response, Router
from daemon.remediation import remediation_auditor, remediation_context, remediation_engine
from daemon.settings import ConfigError, Settings
from daemon.status import StatusCache
from daemon.statuspage import PAGE_HEADERS
from daemon.webconfig import WebConfig, load_web_config
from remediations.audit import AuditRecord
from remediations.outcome import Outcome, Result
from remediations.registry import UnknownRemediation, all_remediations, get_remediation

if TYPE_CHECKING:
    from daemon.view import RunningDaemon as Daemon

log = logging.getLogger("certmon.api")
T = TypeVar("T")

API_MODE = "api"
# Requests that may wait for a worker beyond the ones running; more are answered 503 at once.
QUEUE_PER_WORKER = 4
# How long stopping waits for API handlers to write their answer and audit record once the workers are done.
STOP_WAIT_SECONDS = 30.0
APPLY_FIELDS = {"expect_plan"}
# Longest message an API audit record keeps (messages can quote what the client sent).
MAX_MESSAGE = 500
OUTCOME_STATUS = {
    Outcome.PLANNED: 200,
    Outcome.NOTHING_TO_DO: 200,
    Outcome.APPLIED: 200,
    Outcome.REFUSED: 409,
    Outcome.FAILED: 500,
    Outcome.ROLLED_BACK: 500,
    Outcome.INTERRUPTED: 500,
}


class Busy(Exception):
    """Every worker is taken and the queue is full, or the daemon is stopping."""


@dataclass
class Answer:
    """A handler's response and what the audit record says about it."""

    response: Response
    outcome: str
    remediation: str = ""
    run_id: str = ""
    message: str = ""
    target: str = ""
    #: how an apply's caller proved who it is (token, client-certificate), and who: for the audit
    auth: str = "none"
    principal: str = ""


def error(status: int, outcome: str, message: str, headers: dict[str, str] | None = None, **audit: str) -> Answer:
    """A JSON error answer."""
    response = Response.json({"error": message}, status)
    response.headers.update(headers or {})
    return Answer(response, outcome, message=message, **audit)


def check_api_settings(settings: Settings, web_config: WebConfig) -> None:
    """ConfigError when the API would listen off loopback without TLS."""
    address = settings.api.listen_address
    if not is_loopback(address) and not web_config.tls_enabled:
        raise ConfigError(
            f"api.listen_address: {address!r} is not a loopback address; the remediation API is served off "
            "loopback only over TLS: set api.web_config_file to a web config with tls_server_config "
            "(and client certificates or a token for apply), or listen on 127.0.0.1"
        )
    port = settings.api.effective_port(settings.exporter.port)
    if port > 65535:
        raise ConfigError(f"api.port: the default (exporter.port + 1 = {port}) is not a port; set api.port")


class ApiServer:
    """The status page and the remediation API of one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.settings = daemon.settings.api
        self.web_config = load_web_config(self.settings.web_config_file)
        check_api_settings(daemon.settings, self.web_config)
        self.auth = ApplyAuth(self.settings, self.web_config)
        self.status = StatusCache(daemon)
        self.auditor = remediation_auditor(daemon)
        #: refused requests are audited at a bounded rate (daemon.apirefusals)
        self.refusals = RefusalLimiter()
        self.host = socket.gethostname()
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="api-remediation")
        self._slots = threading.BoundedSemaphore(self.settings.workers * (1 + QUEUE_PER_WORKER))
        self._in_flight = 0
        self._count_lock = threading.Lock()
        # API handlers still running (an apply's handler audits after its job ends): stop waits for them.
        self._handlers = 0
        self._idle = threading.Condition()
        self.router = Router()
        self.router.add("GET", "/", self._page)
        self.router.add("GET", "/healthz", self._healthz)
        self.router.add("GET", "/api/status", self._audited(self._status))
        self.router.add("GET", "/api/evidence", self._audited(self._evidence))
        self.router.add("GET", "/api/remediations", self._audited(self._list))
        self.router.add("POST", "/api/remediations/{name}/plan", self._audited(self._plan))
        self.router.add("POST", "/api/remediations/{name}/apply", self._audited(self._apply))
        self.http: HttpServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve; ConfigError naming the setting when the address cannot be bound."""
        port = self.settings.effective_port(self.daemon.settings.exporter.port)
        try:
            self.http = HttpServer(
                self.settings.listen_address,
                port,
                self.web_config,
                self.router,
                on_refused=self._refused,
                allowed_hosts=api_host_check(self.settings, self.web_config),
            )
        except OSError as err:
            raise ConfigError(
                f"api.listen_address/api.port: cannot listen on {self.settings.listen_address}:{port}: "
                f"{err.strerror or err}; choose another api.port or set api.enabled: false"
            ) from err
        self.http.start()
        if not self.auth.enabled:
            log.info("remediation API: applying is disabled (no api.token_file, no verified client certificates)")

    def stop(self) -> None:
        """Stop serving; wait for a running plan or apply to finish and be audited."""
        if self.http is not None:
            self.http.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._idle:
            if not self._idle.wait_for(lambda: self._handlers == 0, timeout=STOP_WAIT_SECONDS):
                log.warning("stopping with %d API requests unanswered", self._handlers)
        self._write_left_out()

    @property
    def url(self) -> str:
        """Base URL of the listener."""
        return self.http.url if self.http is not None else ""

    # -- plumbing ----------------------------------------------------------------------------

    def _identity(self, request: Request, principal: str = "") -> str:
        who = principal or request.user
        if not who and request.client_cert_der is not None:
            try:
                cert = certificate_from_der(request.client_cert_der, "client certificate")
                who = f"{cert.subject} ({cert.thumbprint})"
            except CertificateError:
                who = "unreadable client certificate"
        return f"api:{who or 'anonymous'}@{request.peer}"

    def _audited(self, handler: Callable[[Request], Answer]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            with self._idle:
                self._handlers += 1
            try:
                try:
                    answer = self._guard(request) or handler(request)
                except Exception:
                    log.exception("API %s %s failed", request.method, request.path)
                    answer = error(500, "error", "internal error; see the daemon's log")
                self._record(request, answer)
                return answer.response
            finally:
                with self._idle:
                    self._handlers -= 1
                    self._idle.notify_all()

        return handle

    def _guard(self, request: Request) -> Answer | None:
        """Refuse what a browser on another site could send with the operator's client certificate."""
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            return error(403, "forbidden", f"cross-site request from {origin} refused")
        if request.method == "POST" and request.body:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return error(415, "bad-request", "send the body as Content-Type: application/json")
        return None

    def _record(self, request: Request, answer: Answer) -> None:
        detail: dict[str, Any] = {
            "method": request.method,
            "path": short_path(request.path),
            "status": answer.response.status,
            "peer": request.peer,
            "auth": answer.auth,
        }
        if answer.outcome in REFUSED_OUTCOMES:
            write, left_out = self.refusals.admit(request.peer, answer.outcome)
            if not write:
                return
            if left_out:
                detail["suppressed"] = left_out
        self._write(answer, self._identity(request, answer.principal), detail)

    def _write(self, answer: Answer, actor: str, detail: dict[str, Any]) -> None:
        record = AuditRecord(
            run_id=answer.run_id or uuid.uuid4().hex,
            at=self.daemon.clock(),
            actor=actor,
            host=self.host,
            environment=self.daemon.settings.environment,
            remediation=short_path(answer.remediation),
            target=answer.target,
            mode=API_MODE,
            outcome=answer.outcome,
            message=answer.message if len(answer.message) <= MAX_MESSAGE else answer.message[: MAX_MESSAGE - 3] + "...",
            detail=detail,
        )
        self.auditor.record(record)

    def _write_left_out(self) -> None:
        """At stop: one record per client and outcome whose refusals were counted but not written."""
        for peer, outcome, count in self.refusals.drain():
            answer = error(0, outcome, f"{count} more refused API requests from {peer} were not recorded one by one")
            self._write(answer, f"api:anonymous@{peer}", {"peer": peer, "suppressed": count})

    @property
    def in_flight(self) -> int:
        """Plans, applies and listings running or waiting for a worker."""
        with self._count_lock:
            return self._in_flight

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._in_flight += delta

    def _refused(self, method: str, path: str, peer: str, status: int) -> None:
        """Audit a request the listener refused: no basic-auth credentials for an API call, or an unknown Host."""
        request = Request(method, path, {}, {}, b"", peer=peer)
        if status == 421:
            self._record(request, error(421, "misdirected", "unknown Host header (DNS rebinding?)"))
        elif path.startswith("/api/"):
            answer = error(401, "unauthorized", "basic-auth credentials missing or wrong")
            answer.auth = "basic"
            self._record(request, answer)

    def _run(self, work: Callable[[], T]) -> T:
        if not self._slots.acquire(blocking=False):
            raise Busy("every remediation worker is busy; try again shortly")
        self._count(1)

        def job() -> T:
            try:
                return work()
            finally:
                self._count(-1)
                self._slots.release()

        try:
            future = self._pool.submit(job)
        except RuntimeError as err:  # the pool is shut down: the daemon is stopping
            self._count(-1)
            self._slots.release()
            raise Busy("the daemon is stopping") from err
        return future.result()

    # -- handlers ----------------------------------------------------------------------------

    def _page(self, request: Request) -> Response:
        return Response.html(self.status.page(), headers=PAGE_HEADERS)

    def _healthz(self, request: Request) -> Response:
        return Response.json({"status": "ok", "remediations_in_flight": self.in_flight})

    def _status(self, request: Request) -> Answer:
        return Answer(Response.json(self.status.document()), "ok")

    def _evidence(self, request: Request) -> Answer:
        """The evidence bundle of the latest view as a ZIP download (the status page links it)."""
        from daemon.evidencebundle import applied_remediations, build_bundle, bundle_document, zip_bundle
        from remediations.audit import AUDIT_FILE

        status = self.status.document()
        document = bundle_document(status, status["certificates"], self.daemon.view.evaluation.references)
        now = self.daemon.clock()
        files = build_bundle(document, applied_remediations(self.daemon.settings.data_dir / AUDIT_FILE), now)
        folder = f"certmon-evidence-{self.daemon.settings.environment}-{now:%Y%m%dT%H%M%SZ}"
        body = zip_bundle(files, folder)
        disposition = {"Content-Disposition": f'attachment; filename="{folder}.zip"'}
        return Answer(Response(200, body, "application/zip", disposition), "ok")

    def _list(self, request: Request) -> Answer:
        actor = self._identity(request)

        def assess() -> dict[str, Any]:
            engine = remediation_engine(self.daemon, self.settings.lock_wait_seconds, actor=actor)
            ctx = remediation_context(self.daemon)
            items = [engine.assess(r, ctx) for r in all_remediations()]
            return {"environment": self.daemon.settings.environment, "remediations": [i.to_dict() for i in items]}

        try:
            return Answer(Response.json(self._run(assess)), "ok")
        except Busy as err:
            return error(503, "busy", str(err), {"Retry-After": "5"})

    def _body(self, request: Request, allowed: set[str]) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError as err:
            raise ValueError(f"the body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed)) or 'none'}")
        return body

    def _engine_answer(self, run: Callable[[str], Result], name: str, actor: str) -> Answer:
        try:
            result = self._run(lambda: run(actor))
        except Busy as err:
            return error(503, "busy", str(err), {"Retry-After": "5"}, remediation=name)
        status = OUTCOME_STATUS.get(result.outcome, 500)
        target = result.plan.target if result.plan is not None else ""
        return Answer(Response.json(result.to_dict(), status), str(result.outcome), name, result.run_id, "", target)

    def _plan(self, request: Request) -> Answer:
        name = request.params["name"]
        try:
            remediation = get_remediation(name)
            self._body(request, set())
        except UnknownRemediation as err:
            return error(404, "not-found", str(err), remediation=name)
        except ValueError as err:
            return error(400, "bad-request", str(err), remediation=name)

        def run(actor: str) -> Result:
            engine = remediation_engine(self.daemon, self.settings.lock_wait_seconds, actor=actor)
            return engine.dry_run(remediation, remediation_context(self.daemon))

        return self._engine_answer(run, name, self._identity(request))

    def _apply(self, request: Request) -> Answer:
        name = request.params["name"]
        decision = self.auth.decide(request)
        if not decision.allowed:
            headers = {}
            if decision.status == 401:
                invalid = ', error="invalid_token"' if decision.method == "token" else ""
                headers["WWW-Authenticate"] = f'Bearer realm="certmon"{invalid}'
            outcome = "unauthorized" if decision.status == 401 else "forbidden"
            answer = error(decision.status, outcome, decision.reason, headers, remediation=name)
            answer.auth, answer.principal = decision.method, decision.principal
            return answer
        try:
            remediation = get_remediation(name)
            body = self._body(request, APPLY_FIELDS)
        except UnknownRemediation as err:
            return error(404, "not-found", str(err), remediation=name)
        except ValueError as err:
            return error(400, "bad-request", str(err), remediation=name)
        expected = body.get("expect_plan")
        if expected is not None and not isinstance(expected, str):
            return error(400, "bad-request", "expect_plan must be the plan's digest, a string", remediation=name)

        def run(actor: str) -> Result:
            engine = remediation_engine(self.daemon, self.settings.lock_wait_seconds, actor=actor)
            ctx = remediation_context(self.daemon, progress=lambda text: log.info("%s: %s", name, text))
            return engine.apply(remediation, ctx, expected_digest=expected)

        principal = decision.principal or decision.method
        answer = self._engine_answer(run, name, self._identity(request, principal))
        answer.auth, answer.principal = decision.method, principal
        log.info("API apply of %s by %s: %s", name, self._identity(request, principal), answer.outcome)
        return answer
