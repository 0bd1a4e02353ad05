"""Triage's SQL: decisions (one per report) and their outbox event."""
from __future__ import annotations

from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.common import outbox
from services.common.settings import TOPIC_DECISIONS

from . import events

SCHEMA = "triage"


def save_decision(conn: psycopg.Connection, *, report_id: str, decision: dict, input_snapshot: dict,
                  assessed_on: date, patient: dict, traceparent: str, decided_at: datetime) -> bool:
    """Insert the decision and its event; False when the report already had one.

    One round trip: both statements go in one pipeline, the event written on the bet that
    the report has no decision yet (it is taken back in the rare case that it had one: a
    report replayed under a new event id). The NOTIFY of a taken-back event only wakes the
    relay for nothing."""
    event = events.decision_event(report_id, decision, decided_at.isoformat(), patient)
    with conn.cursor() as decision_cur, conn.cursor() as outbox_cur:
        with conn.pipeline():
            decision_cur.execute(
                "INSERT INTO triage.decisions (report_id, care_level, rules_version, fired, likely_source,"
                " possible_causes, notes, advice, input_snapshot, assessed_on, decided_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (report_id) DO NOTHING",
                (report_id, decision["care_level"], decision["rules_version"], Jsonb(decision["fired"]),
                 decision["likely_source"], Jsonb(decision["possible_causes"]), Jsonb(decision["notes"]),
                 Jsonb(decision["advice"]), Jsonb(input_snapshot), assessed_on, decided_at),
            )
            outbox.add_event(outbox_cur, SCHEMA, topic=TOPIC_DECISIONS, key=report_id, event=event,
                             traceparent=traceparent)
        # known once the pipeline has synced (its end), lost when the cursor closes
        inserted = decision_cur.rowcount == 1
    if inserted:
        return True
    conn.execute(f"DELETE FROM {SCHEMA}.outbox WHERE event_id = %s", (event["id"],))
    return False


def get_decision(conn: psycopg.Connection, report_id: str) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT report_id::text, care_level, rules_version, fired, likely_source, possible_causes,"
            " notes, advice, decided_at, input_snapshot, assessed_on FROM triage.decisions WHERE report_id = %s",
            (report_id,),
        ).fetchone()


def stored_inputs(conn: psycopg.Connection):
    """Every stored decision's input and level, for the rule-change preview (streamed)."""
    with conn.cursor(name="preview", row_factory=dict_row) as cur:
        cur.execute("SELECT report_id::text, care_level, rules_version, input_snapshot, assessed_on"
                    " FROM triage.decisions ORDER BY decided_at")
        yield from cur


def stored_decisions(conn: psycopg.Connection):
    """Every stored decision, whole, for `clinic rules replay` (streamed)."""
    with conn.cursor(name="replay", row_factory=dict_row) as cur:
        cur.execute("SELECT report_id::text, care_level, rules_version, fired, likely_source, possible_causes,"
                    " notes, advice, input_snapshot, assessed_on FROM triage.decisions ORDER BY decided_at")
        yield from cur
