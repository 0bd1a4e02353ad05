"""Helpers for tests that use one service's app, worker or database role directly."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from unittest import mock

import psycopg
from flask import Flask

from services.common import worker as worker_module
from services.common.inbox import Handler
from services.common.settings import Settings


@contextlib.contextmanager
def flask_app(create_app: Callable[[Settings], Flask], settings: Settings) -> Iterator[Flask]:
    """A service's app (for its test client), its connection pool closed afterwards."""
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["clinic"].pool.close()


@contextlib.contextmanager
def role_conn(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection as the service's role, autocommit: every query sees the latest commits."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


class WorkerThread:
    """`clinic worker <service>` as it runs (services/common/worker.run_worker: migrations,
    outbox relay, inbox consumer) in a thread, stopped and joined on exit. `group_id`: its
    own consumer group, so that other tests' committed offsets do not matter (None: the
    service's own, as in production)."""

    def __init__(self, settings: Settings, *, migrations_package: str, handlers: dict[str, Handler],
                 group_id: str | None = None):
        self.group_id = group_id
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=worker_module.run_worker, args=(settings,), daemon=True, name=f"{settings.service}-test-worker",
            kwargs={"migrations_package": migrations_package, "handlers": handlers, "stop": self.stop,
                    "group_id": group_id})
        # run_worker's configure_logging would replace the root logger's handlers, pytest's
        # log capture (caplog, the report's "Captured log") among them: pytest keeps logging.
        self._logging_kept = mock.patch.object(worker_module, "configure_logging", lambda service: None)

    def __enter__(self) -> WorkerThread:
        self._logging_kept.start()
        self.thread.start()
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self._logging_kept.stop()
        if exc_type is None:
            assert not self.thread.is_alive(), "the worker did not stop within 30 s"


def lz4_compression_letter(conn: psycopg.Connection) -> str:
    """pg_attribute.attcompression of a column the migrations set to lz4: "l" on a server built
    with lz4, "" (the default, pglz) on one without, where the migrations leave it."""
    try:  # lz4 is among this setting's values only on a server built with it
        with conn.transaction():
            conn.execute("SET LOCAL default_toast_compression = lz4")
        return "l"
    except psycopg.errors.InvalidParameterValue:
        return ""
