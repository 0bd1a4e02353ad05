"""The retention purge as each worker runs it: a thread that pseudonymises, every
`CLINIC_RETENTION_PURGE_INTERVAL_SECONDS` (and once at start), the identity of every case
closed longer than `CLINIC_RETENTION_IDENTITY_DAYS`, in batches of
`CLINIC_RETENTION_BATCH_SIZE` rows, one short transaction each.

The service's store says which rows and how (its `pseudonymise_batch(conn, policy, key,
limit)`); the rows are claimed with FOR UPDATE SKIP LOCKED, so several workers of one
service (and `clinic purge`) running at once share the work without waiting or counting a
row twice, and a second pass finds nothing left to do.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .db import connect
from .retention import PurgeResult, RetentionPolicy, key_from_settings, purge_in_batches
from .settings import Settings

log = logging.getLogger(__name__)

BatchFn = Callable[[psycopg.Connection, RetentionPolicy, "bytes | None", int], int]


def purge_now(conn: psycopg.Connection, settings: Settings, batch: BatchFn, *, table: str,
              should_stop=lambda: False) -> PurgeResult:
    """Pseudonymise everything due now, batch after batch, on this connection."""
    policy = RetentionPolicy.from_settings(settings)
    key = key_from_settings(settings)
    return purge_in_batches(lambda limit: batch(conn, policy, key, limit), service=settings.service, table=table,
                            batch_size=settings.retention_batch_size, should_stop=should_stop)


class IdentityPurger:
    def __init__(self, settings: Settings, batch: BatchFn, table: str):
        self.settings = settings
        self.batch = batch
        self.table = table
        self.runs = 0  # completed passes (tests wait on it)

    def run(self, stop: threading.Event) -> None:
        if key_from_settings(self.settings) is None:
            log.warning("no pseudonym key (CLINIC_PSEUDONYM_KEY or CLINIC_SECRET_KEY): closed cases' MRNs are"
                        " dropped without a pseudonym", extra={"service": self.settings.service})
        while not stop.is_set():
            try:
                with connect(self.settings.database_url) as conn:
                    result = purge_now(conn, self.settings, self.batch, table=self.table, should_stop=stop.is_set)
                self.runs += 1
                if result.pseudonymised:
                    log.info("closed cases pseudonymised", extra={
                        "table": result.table, "rows": result.pseudonymised, "batches": result.batches,
                        "identity_days": self.settings.retention_identity_days})
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("retention purge waiting for the database", extra={"error": type(exc).__name__})
            except Exception:  # a bug: log it, try again at the next interval
                log.exception("retention purge failed; retrying at the next interval")
            stop.wait(self.settings.retention_purge_interval_seconds)


def start_purge_thread(purger: IdentityPurger, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=purger.run, args=(stop,), name=f"retention-purge-{purger.settings.service}",
                              daemon=True)
    thread.start()
    return thread
