"""Connection pools and per-service SQL migrations."""
from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import psycopg
from flask import g
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from .fail_fast import FailFastGate

log = logging.getLogger(__name__)

# How long a request may wait for a connection before we answer 503: short (3 s), so
# that kiosks see "unavailable" quickly when PostgreSQL is down instead of hanging.
# After an outage the pool reconnects on the next request; readiness reports the outage.
POOL_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3
# Once a request has waited the whole POOL_TIMEOUT_S in vain, the others are refused at
# once (503) while one request a second checks whether the database is back: a crowd of
# retrying kiosks then gets its answers in milliseconds instead of queueing behind
# 3-second waits for the few request threads.
FAIL_FAST_S = 1.0
# The probe waits less than a request normally may: the pool does not retry a failed
# connection while a caller waits, so a long wait would only delay noticing the return.
PROBE_TIMEOUT_S = 1.0


def closed_by_server(conn: psycopg.Connection) -> bool:
    """Whether the server has ended this idle connection (a restart, pg_terminate_backend),
    found without a round trip: its socket then has something to read (the FATAL message,
    the end of the stream), which an idle connection of an API never has (they do not LISTEN).
    A rare false alarm (a message the server sent unasked) only costs a new connection."""
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class FailFastPool(ConnectionPool):
    """A ConnectionPool whose getconn() refuses at once while the database is known down, and
    drops, without a round trip, the connections the server has closed (closed_by_server).

    It is made with check=None: psycopg_pool's check (an empty query on every checkout) was a
    quarter of an intake worker's time under load. A connection that dies between checkout
    and use fails its statement with an OperationalError: a 503 (services/common/errors.py),
    and the pool replaces it when it comes back."""

    def __init__(self, *args, fail_fast_s: float = FAIL_FAST_S, **kwargs):
        self.gate = FailFastGate(fail_fast_s)
        super().__init__(*args, **kwargs)

    def getconn(self, timeout: float | None = None):
        if not self.gate.admit():
            raise PoolTimeout("the database did not answer a moment ago; not waiting again yet")
        if self.gate.down:  # this caller is the probe
            timeout = PROBE_TIMEOUT_S
        try:
            conn = self._live_connection(self.timeout if timeout is None else timeout)
        except Exception:  # a timeout, mostly; any failure ends this caller's probe
            self.gate.failed()
            raise
        self.gate.succeeded()
        return conn

    def _live_connection(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            conn = super().getconn(max(0.0, deadline - time.monotonic()))
            if not closed_by_server(conn):
                return conn
            log.info("dropping a pooled connection the server closed", extra={"pool": self.name})
            conn.close()
            self.putconn(conn)  # closed: the pool discards it and opens another in the background


def make_pool(url: str, *, max_size: int = 4, name: str = "pool", fail_fast: bool = False) -> ConnectionPool:
    """A pool opened without waiting, so a process starts even while the database is down.
    `fail_fast` (request handlers): see FailFastPool."""
    pool = (FailFastPool if fail_fast else ConnectionPool)(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        name=name,
        timeout=POOL_TIMEOUT_S,
        # Give up a failed background reconnection at once instead of retrying for 5
        # minutes: the next request asks for a connection again (tested: recovery within
        # ~0.2 s of PostgreSQL's return).
        reconnect_timeout=0,
        # Drop connections killed by a PostgreSQL restart: the request handlers' pool by a look
        # at the socket (FailFastPool), the workers' by an empty query on each checkout.
        check=None if fail_fast else ConnectionPool.check_connection,
        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": name},
    )
    pool.open(wait=False)
    return pool


# -- one connection per request (the APIs) --------------------------------------------------
def request_connection(pool: ConnectionPool) -> psycopg.Connection:
    """This request's connection: checked out of `pool` at its first use, kept on flask.g,
    returned by release_request_connection when the request ends (web.py registers it), so
    that a request's steps (kiosk key, quota, the report) share one checkout.

    It is in autocommit: each statement commits alone, and work that must be atomic opens
    `conn.transaction()`. Nothing may check out another connection of the same pool while the
    request holds this one (threads x connections: they could wait for each other)."""
    conn = g.get("_db_conn")
    if conn is None:
        conn = pool.getconn()
        conn.autocommit = True
        g._db_conn, g._db_pool = conn, pool
    return conn


def release_request_connection(_exc: BaseException | None = None) -> None:
    """Give the request's connection back (a Flask teardown_request); the pool drops a broken one."""
    conn = g.pop("_db_conn", None)
    if conn is None:
        return
    pool = g.pop("_db_pool")
    if not conn.closed:
        try:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.autocommit = False  # as the pool's other users expect
        except psycopg.Error:
            conn.close()
    pool.putconn(conn)


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)


def _sql_files(package: str) -> list[tuple[str, str]]:
    folder = resources.files(package).joinpath("migrations")
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migration_files(package: str, schema: str) -> list[tuple[str, str]]:
    """(version, sql) pairs: the shared outbox/inbox tables first, then `<package>/migrations/NNN_*.sql`."""
    shared = [(v, sql.replace("{schema}", schema)) for v, sql in _sql_files("services.common")]
    return shared + _sql_files(package)


def apply_migrations(conn: psycopg.Connection, schema: str, package: str) -> list[str]:
    """Apply pending migrations in one transaction.

    The advisory lock makes a second process that starts at the same moment wait
    and then find nothing left to do, instead of racing on CREATE TABLE.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrations:{schema}",))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_migrations")}
        for version, sql in migration_files(package, schema):
            if version in done:
                continue
            conn.execute(sql)
            conn.execute(f"INSERT INTO {schema}.schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
    if applied:
        log.info("migrations applied", extra={"schema": schema, "versions": applied})
    return applied


def pending_migrations(conn: psycopg.Connection, schema: str, package: str) -> list[str]:
    done = {r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_migrations")}
    return [v for v, _ in migration_files(package, schema) if v not in done]


@contextmanager
def pipelined(conn: psycopg.Connection) -> Iterator[None]:
    """conn.pipeline(), unless the connection is in one already: a nested pipeline waits for
    the server twice (a sync where it starts and where it ends), which is what it is for
    here to avoid. Results are read by fetching them, never by a cursor's rowcount."""
    if conn.pgconn.pipeline_status != pq.PipelineStatus.OFF:
        yield
    else:
        with conn.pipeline():
            yield
