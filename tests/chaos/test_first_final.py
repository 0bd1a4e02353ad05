"""The fault suite's report-to-final stamp (first_final.py) on the real database: a report is
stamped when its status first becomes final, as the intake worker's role, and never again
(a later snapshot of its referral moves updated_at, not the stamp). The trigger is installed
and everything undone in one transaction: the session's database keeps no trigger."""
from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.chaos import first_final

pytestmark = pytest.mark.integration


def _add_report(conn: psycopg.Connection) -> str:
    report_id = str(uuid.uuid4())
    kiosk = conn.execute("INSERT INTO intake.kiosks (name, key_hash) VALUES (%s, %s) RETURNING kiosk_id",
                         (f"first-final-{report_id}", f"hash-{report_id}")).fetchone()[0]
    conn.execute("INSERT INTO intake.reports (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical)"
                 " VALUES (%s, %s, %s, 'x', '{}', '{}')", (report_id, kiosk, report_id))
    return report_id


def _as_intake(conn: psycopg.Connection, query: str, params: tuple) -> None:
    """An update as the intake worker's role, which has no rights on chaos_watch."""
    conn.execute("SET LOCAL ROLE intake")
    conn.execute(query, params)
    conn.execute("RESET ROLE")


def _stamp(conn: psycopg.Connection, report_id: str):
    row = conn.execute("SELECT at FROM chaos_watch.first_final WHERE report_id = %s", (report_id,)).fetchone()
    return row[0] if row else None


def test_a_report_is_stamped_once_when_it_first_becomes_final(pg, intake_settings):
    with psycopg.connect(pg.admin_url()) as conn:  # one transaction, rolled back
        try:
            conn.execute(first_final.INSTALL_SQL)
            referred, self_care = _add_report(conn), _add_report(conn)
            _as_intake(conn, "UPDATE intake.reports SET care_level = 'urgent' WHERE report_id = %s", (referred,))
            assert _stamp(conn, referred) is None  # decided, but waiting for its referral: not final
            _as_intake(conn, "UPDATE intake.reports SET referral = %s WHERE report_id = %s",
                       (Jsonb({"referral_id": str(uuid.uuid4()), "status": "booked"}), referred))
            _as_intake(conn, "UPDATE intake.reports SET care_level = 'self_care' WHERE report_id = %s", (self_care,))
            first = _stamp(conn, referred)
            assert first is not None and _stamp(conn, self_care) is not None

            time.sleep(0.01)  # clock_timestamp() would move
            _as_intake(conn, "UPDATE intake.reports SET referral = %s, updated_at = clock_timestamp()"
                       " WHERE report_id = %s",
                       (Jsonb({"referral_id": str(uuid.uuid4()), "status": "waitlisted"}), referred))
            assert _stamp(conn, referred) == first

            submitted, final, report_id = next(row for row in first_final.finals(conn, [referred, self_care])
                                               if row[2] == referred)
            assert final == pytest.approx(first.timestamp(), abs=1e-6) and final >= submitted
        finally:
            conn.rollback()
