"""Wakes intake's outbox relay (NOTIFY) after reports are committed, off the request threads.

A NOTIFY in a report's own transaction holds a database-wide lock from its commit to the end of
its WAL flush: reports then committed one at a time, a flush each (issue 15). Sent by the
request thread after the commit it costs every POST a round trip. Here one thread per process
sends them on a connection of its own, and the commits that happen while it is sending one are
announced by the next: each POST only sets an event. No wake-up is lost: a commit sets the event
after it is committed, and the thread clears the event before it sends, so a NOTIFY is sent after
every commit. A NOTIFY that fails (the database down) costs the relay its fallback poll (1 s).
"""
from __future__ import annotations

import logging
import threading

import psycopg

from services.common.db import connect

from .. import store

log = logging.getLogger(__name__)

IDLE_CLOSE_S = 60.0  # a process that has not accepted a report for this long holds no connection
RETRY_AFTER_S = 1.0  # after a failure: not a connection attempt per report while the database is down


class RelayWaker:
    def __init__(self, database_url: str):
        self._url = database_url
        self._pending = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def wake(self) -> None:
        """After a commit: a NOTIFY will follow (the thread starts at the first call, in the
        process that serves requests, never at import or before gunicorn forks)."""
        if not self._started:
            with self._lock:
                if not self._started:
                    threading.Thread(target=self._run, name="relay-waker", daemon=True).start()
                    self._started = True
        self._pending.set()

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while True:
            if not self._pending.wait(IDLE_CLOSE_S):
                if conn is not None:
                    conn.close()
                    conn = None
                continue
            self._pending.clear()  # before sending: a commit after this point gets another NOTIFY
            try:
                if conn is None or conn.closed:
                    conn = connect(self._url, autocommit=True, application_name="intake-relay-waker")
                store.wake_relay(conn)
            except psycopg.Error as exc:
                log.warning("outbox relay not woken", extra={"error": type(exc).__name__})
                if conn is not None:
                    conn.close()
                    conn = None
                self._pending.wait(RETRY_AFTER_S)
