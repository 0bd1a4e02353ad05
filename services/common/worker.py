"""A service worker process: the outbox relay in a thread, the inbox consumer in the main thread."""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from prometheus_client import start_http_server

from . import json_codec
from .db import apply_migrations, make_pool
from .error_text import safe_error_text
from .inbox import Handler, InboxConsumer
from .kafka_io import client_security
from .logs import configure_logging
from .outbox import OutboxRelay, start_relay_thread
from .purge import IdentityPurger, start_purge_thread
from .settings import Settings

log = logging.getLogger(__name__)

# A worker's threads hand work to each other (consumer <-> kafka-python's IO thread, relay <->
# the producer's sender thread): a thread woken by I/O waits for the GIL until the thread
# holding it is made to let go, after the switch interval (CPython's 5 ms). Handoffs are on
# every hop of an event's path (issue 15). CLINIC_WORKER_SWITCH_INTERVAL_MS, 0: CPython's.
SWITCH_INTERVAL_ENV = "CLINIC_WORKER_SWITCH_INTERVAL_MS"
DEFAULT_SWITCH_INTERVAL_MS = 1.0


def set_switch_interval(environ=os.environ) -> None:
    """The process's switch interval from CLINIC_WORKER_SWITCH_INTERVAL_MS (SystemExit naming
    it when it is not a number of milliseconds >= 0)."""
    raw = environ.get(SWITCH_INTERVAL_ENV, "")
    try:
        ms = float(raw) if raw.strip() else DEFAULT_SWITCH_INTERVAL_MS
    except ValueError:
        ms = -1.0
    if not (math.isfinite(ms) and ms >= 0):
        raise SystemExit(f"{SWITCH_INTERVAL_ENV}: must be a number of milliseconds >= 0")
    if ms > 0:
        sys.setswitchinterval(ms / 1000)


def migrate_when_possible(pool, schema: str, package: str, stop: threading.Event) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            with pool.connection() as conn:
                apply_migrations(conn, schema, package)
            return
        except Exception as exc:
            log.warning("waiting for the database to apply migrations", extra={"error": safe_error_text(exc)})
            stop.wait(delay)
            delay = min(delay * 2, 5.0)


def serve_metrics(bind: str | None):
    """The worker's own /metrics (its consumer and relay counters), when a bind is given.
    A port already taken (a second worker started with the same settings) costs the
    metrics, not the work: events still flow."""
    if not bind:
        return None
    host, _, port = bind.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host or "0.0.0.0")
    except OSError as exc:
        log.error("cannot serve metrics; going on without", extra={"bind": bind, "error": safe_error_text(exc)})
        return None
    log.info("metrics served", extra={"bind": bind})
    return server


def install_stop_signals(stop: threading.Event) -> None:
    def handle(signum, _frame):
        log.info("stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_worker(settings: Settings, *, migrations_package: str, handlers: dict[str, Handler],
               stop: threading.Event | None = None, group_id: str | None = None,
               identity_purge: tuple | None = None,
               background: Sequence[Callable[[threading.Event], None]] = ()) -> None:
    """The worker until `stop` is set (SIGTERM/SIGINT in the main thread); its consumer group
    is `group_id`, by default `clinic-<service>` (tests give each worker its own, under that
    prefix: the service's principal may use only groups named clinic-<service> or
    clinic-<service>-...). `background`: the service's own loops (intake's patient message
    sender), each run in a thread once the migrations are applied, given `stop`."""
    configure_logging(settings.service)
    set_switch_interval()
    json_codec.use_for_postgres()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        install_stop_signals(stop)
    metrics_server = serve_metrics(settings.metrics_bind)
    pool = make_pool(settings.database_url, max_size=2, name=f"{settings.service}-worker")
    try:
        migrate_when_possible(pool, settings.service, migrations_package, stop)
        security = client_security(settings)  # SASL as the service's own principal, if configured
        relay = OutboxRelay(settings.database_url, settings.service, settings.kafka_bootstrap,
                            client_id=f"{settings.service}-relay", kafka_security=security)
        relay_thread = start_relay_thread(relay, stop)
        # (the service store's pseudonymise_batch, its table): the retention purge (purge.py)
        purge_thread = (start_purge_thread(IdentityPurger(settings, *identity_purge), stop)
                        if identity_purge else None)
        extra_threads = [threading.Thread(target=loop, args=(stop,), daemon=True,
                                          name=getattr(loop, "__qualname__", "background"))
                         for loop in background]
        for thread in extra_threads:
            thread.start()
        log.info("worker started", extra={"topics": list(handlers)})
        consumer = InboxConsumer(service=settings.service, pool=pool, kafka_bootstrap=settings.kafka_bootstrap,
                                 group_id=group_id or f"clinic-{settings.service}", handlers=handlers,
                                 kafka_security=security)
        while handlers and not stop.is_set():
            try:
                consumer.run(stop)
            except Exception as exc:  # broker unreachable at start, or a lost connection
                log.warning("consumer restarting", extra={"error": safe_error_text(exc)})
                stop.wait(2.0)
        stop.wait()
        stop.set()
        relay_thread.join(timeout=15)
        if purge_thread is not None:
            purge_thread.join(timeout=15)
        for thread in extra_threads:
            thread.join(timeout=15)
    finally:
        pool.close()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        log.info("worker stopped")
