"""The Flask scaffolding every service shares: app + OpenAPI, pool, errors, health, metrics."""
from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field

from apispec import BasePlugin
from flask import Blueprint, Flask, Response, g, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from flask_smorest import Api
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import ConnectionPool
from werkzeug.middleware.proxy_fix import ProxyFix

from . import auth, json_codec, metrics, outbox
from .db import apply_migrations, make_pool, release_request_connection
from .errors import ErrorSchema, document_standard_errors, register_error_handlers
from .json_body import StrictJSONProvider
from .logs import configure_logging
from .settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class ClinicApi(Api):
    # The error answers the OpenAPI documents describe: ours, not flask-smorest's default.
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: each operation lists every status it can answer
    # (errors.document_standard_errors, through _StandardErrors below).
    DEFAULT_ERROR_RESPONSE_NAME = None


class _StandardErrors(BasePlugin):
    """apispec plugin: every operation registered gets the error answers any request can get."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        document_standard_errors(path or "", operations or {})


# On every answer (JSON, pages, static files, errors), unless the answer set its own:
# nothing is cached (answers carry patient data), sniffed into another type, framed, or
# allowed to load anything. The pages (kiosk, queue) set their own, looser CSP for their
# own scripts and styles; each keeps frame-ancestors 'none'.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


_SECURITY_HEADER_NAMES = {name.lower(): name for name in SECURITY_HEADERS}


def security_headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}  # one pass, not one scan per name
    headers.extend([(name, SECURITY_HEADERS[name]) for lowered, name in _SECURITY_HEADER_NAMES.items()
                    if lowered not in present])
    if "content-security-policy" in present:  # the answer's own; ours has frame-ancestors
        csp = headers["Content-Security-Policy"]
        if "frame-ancestors" not in csp:
            headers["Content-Security-Policy"] = csp + "; frame-ancestors 'none'"
    return response


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session with its signing serializer built once per app, not on
    every request (1.6% of an intake worker's time under load, for a session no API view reads),
    and a request without cookies (every kiosk and API call) given its new, empty session
    without parsing the cookies at all."""

    def get_signing_serializer(self, app: Flask):
        serializer = app.extensions.get("clinic_session_serializer")
        if serializer is None:
            serializer = app.extensions["clinic_session_serializer"] = super().get_signing_serializer(app)
        return serializer

    def open_session(self, app: Flask, request):
        if not request.environ.get("HTTP_COOKIE") and self.get_signing_serializer(app) is not None:
            return self.session_class()  # what Flask's open_session answers when the cookie is absent
        return super().open_session(app, request)


ACCESS_FIELDS_KEY = "clinic.access_fields"  # = gunicorn_conf.ACCESS_FIELDS_KEY (no gunicorn import here)


def access_fields(**fields) -> None:
    """Fields (ids only, never patient data) for this request's access line
    (services/common/gunicorn_conf.py): one line per request says what the request did."""
    request.environ.setdefault(ACCESS_FIELDS_KEY, {}).update(fields)


@dataclass
class ServiceContext:
    settings: Settings
    pool: ConnectionPool
    migrations_package: str
    migrated: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_migrated(self) -> None:
        """Apply migrations once; retried lazily by /readyz while the database is down."""
        if self.migrated:
            return
        with self._lock:
            if self.migrated:
                return
            with self.pool.connection() as conn:
                apply_migrations(conn, self.settings.service, self.migrations_package)
            self.migrated = True


def kafka_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def health_blueprint(ctx: ServiceContext) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz():
        checks = {"database": "ok", "migrations": "ok", "kafka": "ok"}
        try:
            ctx.ensure_migrated()
            with ctx.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any failure here means "not ready", never a 500
            checks["database"] = f"unavailable: {type(exc).__name__}"
            checks["migrations"] = "ok" if ctx.migrated else "pending"
        if not kafka_reachable(ctx.settings.kafka_bootstrap):
            checks["kafka"] = "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503

    def read_outbox() -> tuple[int, float]:
        with ctx.pool.connection() as conn:
            return outbox.backlog(conn, ctx.settings.service)

    @bp.get("/metrics")
    def prometheus_metrics():
        text = metrics.exposition(metrics.OutboxCollector(ctx.settings.service, read_outbox))
        return Response(text, mimetype=CONTENT_TYPE_LATEST)

    return bp


def _instrument(app: Flask, service: str) -> None:
    # The labelled children, looked up once each: .labels() builds and checks its label values
    # and takes the metric's lock on every call. A few dozen (route, method, status) at most.
    counters: dict[tuple, object] = {}
    histograms: dict[tuple, object] = {}

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def record(response):
        rule = request.url_rule
        endpoint = rule.rule if rule else "unmatched"
        method = request.method
        key = (endpoint, method, response.status_code)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = metrics.HTTP_REQUESTS.labels(service, endpoint, method, response.status_code)
        counter.inc()
        started = g.get("started")
        if started is not None:
            histogram = histograms.get(key[:2])
            if histogram is None:
                histogram = histograms[key[:2]] = metrics.HTTP_LATENCY.labels(service, endpoint, method)
            histogram.observe(time.perf_counter() - started)
        return response


class ClinicFlask(Flask):
    """Flask, remembering which views and hooks are plain functions: Flask asks
    inspect.iscoroutinefunction of each one on every request (a dozen calls per request).
    Weakly: a callable made for one request (audit's after_this_request) is forgotten with it."""

    def ensure_sync(self, func):
        known = self.__dict__.get("_clinic_sync")
        if known is None:
            known = self.__dict__.setdefault("_clinic_sync", weakref.WeakKeyDictionary())
        try:
            if known[func]:  # True: a plain function, its own synchronous self
                return func
        except KeyError:
            synced = super().ensure_sync(func)
            # Only plain functions, and True rather than the function (a value referring to its
            # key would keep it alive). A coroutine function is wrapped anew each time, as by Flask.
            if synced is func:
                known[func] = True
            return synced
        except TypeError:  # not weakly referable or not hashable: ask every time
            return super().ensure_sync(func)


def build_app(settings: Settings, *, title: str, migrations_package: str, import_name: str) -> Flask:
    configure_logging(settings.service)
    json_codec.use_for_postgres()
    app = ClinicFlask(import_name, static_folder=None)  # pages register their own static routes
    app.json = StrictJSONProvider(app)  # request.get_json() as strict as the APIs' bodies
    app.session_interface = CookieSessions()
    if settings.trusted_proxy_hops > 0:
        # Behind the TLS proxy (infra/proxy): the client's address, the scheme (HTTPS: Secure
        # session cookies) and the host are the proxy's X-Forwarded-* values, taken from the
        # rightmost `hops` entries, which the proxy set. Without proxies (0, the default) the
        # headers are ignored, so a client cannot claim another address or HTTPS.
        n = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.config.update(
        SECRET_KEY=settings.require_secret_key(),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME=f"clinic_{settings.service}_session",
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH=None,
        JSON_SORT_KEYS=False,
    )
    pool = make_pool(settings.database_url, name=f"{settings.service}-api", fail_fast=True)
    ctx = ServiceContext(settings=settings, pool=pool, migrations_package=migrations_package)
    app.extensions["clinic"] = ctx
    api = ClinicApi(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}],
        "extra_plugins": [_StandardErrors()]})
    app.extensions["clinic_api"] = api
    register_error_handlers(app)  # after Api(): ours replace flask-smorest's error format
    app.register_blueprint(health_blueprint(ctx))
    app.teardown_request(release_request_connection)  # db.request_connection's, if one was taken
    _instrument(app, settings.service)
    auth.init_app(app)  # after _instrument: the metrics see a 401 turned into a 429
    app.after_request(security_headers)
    try:
        ctx.ensure_migrated()
    except Exception as exc:
        log.warning("migrations deferred: database unavailable", extra={"error": type(exc).__name__})
    return app
