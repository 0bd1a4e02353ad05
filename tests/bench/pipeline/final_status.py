"""Seeing each report reach its final status without polling the API (which would add load):
a trigger on intake.reports, installed on the benchmark's own stack only, NOTIFYs when a
report's status view first becomes final (a referral linked, or a self-care decision), and
one listening connection stamps the time each notification arrives. NOTIFY is delivered
when the intake worker's transaction commits, so the stamp is when a kiosk could first
read the final status (plus the listener's own delay, which only makes the stack look slower).

The trigger costs the stack one function call and one NOTIFY per report, in the intake
worker's transaction (intake's outbox already NOTIFYs the same way)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from tests.final_status_sql import BECAME_FINAL

CHANNEL = "bench_final_status"

TRIGGER_SQL = f"""
CREATE SCHEMA IF NOT EXISTS bench_watch;
CREATE OR REPLACE FUNCTION bench_watch.notify_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {BECAME_FINAL} THEN
        PERFORM pg_notify('{CHANNEL}', NEW.report_id::text);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_final_status ON intake.reports;
CREATE TRIGGER bench_final_status AFTER UPDATE ON intake.reports
    FOR EACH ROW EXECUTE FUNCTION bench_watch.notify_final();
"""


class FinalStatusWatch:
    """Install the trigger, then listen in a thread: final_at[report_id] = time.time()."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.final_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> FinalStatusWatch:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(TRIGGER_SQL)
        self._thread = threading.Thread(target=self._listen, name="bench-final-status", daemon=True)
        self._thread.start()
        if not self._listening.wait(30):
            raise RuntimeError(f"the final-status listener did not start: {self._error!r}")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _listen(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        self.final_at.setdefault(note.payload, time.time())
        except BaseException as exc:  # reported by wait_for, where the benchmark would hang
            self._error = exc
            self._listening.set()

    def describe(self, report_ids: list[str]) -> str:
        """What the database says of reports not seen final: stuck in the stack, or missed here."""
        import psycopg

        with psycopg.connect(self.admin_url) as conn:
            rows = conn.execute(
                "SELECT coalesce(care_level, 'undecided'), referral IS NOT NULL, count(*) FROM intake.reports"
                " WHERE report_id = ANY(%s::uuid[]) GROUP BY 1, 2 ORDER BY 1, 2", (report_ids,)).fetchall()
        return ", ".join(f"{n} {level}{' with referral' if linked else ''}" for level, linked, n in rows)

    def wait_for(self, report_ids: Iterable[str], timeout: float) -> list[str]:
        """Wait until every report is final; the ones still not final after `timeout` s."""
        pending = set(report_ids)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            if self._error:
                raise RuntimeError("the final-status listener failed") from self._error
            pending = {r for r in pending if r not in self.final_at}
            if pending:
                time.sleep(0.1)
        return sorted(pending)
