"""Triage's SQL: decisions (one per report) and their outbox event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.common import outbox
from services.common.settings import TOPIC_DECISIONS

from . import events

SCHEMA = "triage"


@dataclass(frozen=True)
class NewDecision:
    """A decision made for a report, with what its event needs, ready to be stored."""
    report_id: str
    decision: dict
    input_snapshot: dict
    assessed_on: date
    patient: dict
    traceparent: str
    decided_at: datetime


def save_decisions(conn: psycopg.Connection, made: list[NewDecision]) -> list[bool]:
    """Insert the decisions, and the event of each one that is new, in the caller's
    transaction, in one statement whatever their number (a consumed batch's). Each decision
    goes as its event (whose data holds the decision) and its input: two JSON documents
    instead of six, the columns read out of them by the database. Arrays go in binary (%b):
    psycopg's text form escapes each element in Python, 4x slower for JSON. For each, True
    when stored, False when its report already had a decision (a report replayed under a new
    event id; or twice in `made`, where the first one wins and alone is announced). The
    events are written in the order of `made`, so published in the order consumed."""
    if not made:
        return []
    announced = [events.decision_event(m.report_id, m.decision, m.decided_at.isoformat(), m.patient) for m in made]
    rows = conn.execute(
        "WITH made AS (SELECT * FROM unnest(%b::jsonb[], %b::jsonb[], %b::date[], %b::text[]) WITH ORDINALITY"
        "   AS m (event, input_snapshot, assessed_on, traceparent, ordinal)),"
        " stored AS (INSERT INTO triage.decisions (report_id, care_level, rules_version, fired, likely_source,"
        "   possible_causes, notes, advice, input_snapshot, assessed_on, decided_at, language, advice_ids,"
        "   safety_netting, patient_text)"
        "   SELECT (d->>'report_id')::uuid, d->>'care_level', d->>'rules_version', d->'fired', d->>'likely_source',"
        "     d->'possible_causes', d->'notes', d->'advice', input_snapshot, assessed_on,"
        "     (d->>'decided_at')::timestamptz, d->>'language', d->'advice_ids', d->'safety_netting', d->'patient_text'"
        "   FROM made, LATERAL (SELECT made.event->'data') AS x (d) ORDER BY ordinal"
        "   ON CONFLICT (report_id) DO NOTHING RETURNING report_id),"
        " announced AS (INSERT INTO triage.outbox (event_id, topic, key, payload, traceparent)"
        "   SELECT (event->>'id')::uuid, %s, report_id::text, event, traceparent FROM ("
        "     SELECT DISTINCT ON (stored.report_id) stored.report_id, made.event, made.traceparent, made.ordinal"
        "     FROM stored JOIN made ON (made.event->'data'->>'report_id')::uuid = stored.report_id"
        "     ORDER BY stored.report_id, made.ordinal) AS firsts"
        "   ORDER BY ordinal RETURNING 1)"
        " SELECT stored.report_id::text, (SELECT pg_notify(%s, '') FROM announced LIMIT 1) FROM stored",
        ([Jsonb(e) for e in announced], [Jsonb(m.input_snapshot) for m in made], [m.assessed_on for m in made],
         [m.traceparent for m in made], TOPIC_DECISIONS, outbox.outbox_channel(SCHEMA)),
    ).fetchall()
    stored = {row[0] for row in rows}
    saved = []
    for m in made:
        saved.append(m.report_id in stored)
        stored.discard(m.report_id)  # the first of two for one report is the one stored
    return saved


def save_decision(conn: psycopg.Connection, **fields) -> bool:
    """One decision (save_decisions' fields as keywords); False when the report had one."""
    return save_decisions(conn, [NewDecision(**fields)])[0]


def get_decision(conn: psycopg.Connection, report_id: str) -> dict | None:
    """The stored decision, whole (the API shows the contract's fields of it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT report_id::text, care_level, rules_version, fired, likely_source, possible_causes,"
            " notes, advice, advice_ids, safety_netting, language, patient_text, decided_at, input_snapshot,"
            " assessed_on FROM triage.decisions WHERE report_id = %s",
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
                    " notes, advice, advice_ids, safety_netting, language, patient_text, input_snapshot,"
                    " assessed_on FROM triage.decisions ORDER BY decided_at")
        yield from cur
