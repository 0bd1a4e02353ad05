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
    transaction: two statements whatever their number (a consumed batch's; the arrays go in
    binary, %b: psycopg's text form escapes each element in Python, 4x slower for JSON). For
    each, True when stored, False when its report already had a decision (a report replayed under a
    new event id; or twice in `made`, where the first one wins)."""
    if not made:
        return []
    columns = list(zip(*[
        (m.report_id, m.decision["care_level"], m.decision["rules_version"], Jsonb(m.decision["fired"]),
         m.decision["likely_source"], Jsonb(m.decision["possible_causes"]), Jsonb(m.decision["notes"]),
         Jsonb(m.decision["advice"]), Jsonb(m.input_snapshot), m.assessed_on, m.decided_at)
        for m in made]))
    stored = {row[0] for row in conn.execute(
        "INSERT INTO triage.decisions (report_id, care_level, rules_version, fired, likely_source,"
        " possible_causes, notes, advice, input_snapshot, assessed_on, decided_at)"
        " SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::jsonb[], %b::text[], %b::jsonb[],"
        " %b::jsonb[], %b::jsonb[], %b::jsonb[], %b::date[], %b::timestamptz[])"
        " ON CONFLICT (report_id) DO NOTHING RETURNING report_id::text",
        [list(column) for column in columns]).fetchall()}
    saved, announced = [], []
    for m in made:
        new = m.report_id in stored
        stored.discard(m.report_id)  # the first of two for one report is the one stored
        saved.append(new)
        if new:
            event = events.decision_event(m.report_id, m.decision, m.decided_at.isoformat(), m.patient)
            announced.append((TOPIC_DECISIONS, m.report_id, event, m.traceparent))
    with conn.cursor() as cur:
        outbox.add_events(cur, SCHEMA, announced)
    return saved


def save_decision(conn: psycopg.Connection, **fields) -> bool:
    """One decision (save_decisions' fields as keywords); False when the report had one."""
    return save_decisions(conn, [NewDecision(**fields)])[0]


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
