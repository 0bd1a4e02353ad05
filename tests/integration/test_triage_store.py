"""triage.store.save_decision on its own: one decision and one event per report, whatever
number of times it is called (a report replayed under a new event id)."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.triage import store
from tests.app_support import lz4_compression_letter

pytestmark = pytest.mark.integration

DECISION = {"care_level": "specialist", "rules_version": "test", "fired": [], "likely_source": "joint",
            "possible_causes": [], "notes": [], "advice": [], "advice_ids": [], "safety_netting": [],
            "language": "es", "patient_text": {"advice": [], "reasons": []}}
PATIENT = {"mrn": "MRN-1", "display_name": "Ann Example", "birth_date": "1990-01-01"}


def save(conn, report_id: str, decided_at: datetime) -> bool:
    return store.save_decision(conn, report_id=report_id, decision=DECISION, input_snapshot={},
                               assessed_on=date(2026, 11, 26), patient=PATIENT, traceparent="",
                               decided_at=decided_at)


def test_a_second_decision_for_a_report_is_neither_stored_nor_announced(triage_conn):
    report_id = str(uuid.uuid4())
    first_at = datetime(2026, 11, 26, 9, 30, 0, 120000, tzinfo=UTC)
    with triage_conn.transaction():
        assert save(triage_conn, report_id, first_at) is True
        assert save(triage_conn, report_id, datetime.now(UTC)) is False
    assert store.get_decision(triage_conn, report_id)["decided_at"] == first_at
    payloads = triage_conn.execute("SELECT payload FROM triage.outbox WHERE key = %s", (report_id,)).fetchall()
    assert [p[0]["data"]["decided_at"] for p in payloads] == [first_at.isoformat()]


def made(report_id: str, decided_at: datetime, care_level: str = "specialist") -> store.NewDecision:
    return store.NewDecision(report_id=report_id, decision={**DECISION, "care_level": care_level},
                             input_snapshot={"pain": {"severity": 3}}, assessed_on=date(2026, 11, 26),
                             patient=PATIENT, traceparent=f"00-{uuid.uuid4().hex}-{'1' * 16}-01",
                             decided_at=decided_at)


def test_a_batch_stores_each_new_report_once_and_announces_only_what_it_stored(triage_conn):
    """A consumed batch's decisions in two statements: an already decided report, and one
    that comes twice in the batch (the first wins), are neither stored again nor announced."""
    decided, twice, fresh = (str(uuid.uuid4()) for _ in range(3))
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    with triage_conn.transaction():
        assert save(triage_conn, decided, at) is True
        batch = [made(twice, at, "self_care"), made(fresh, at, "urgent"), made(decided, at), made(twice, at)]
        assert store.save_decisions(triage_conn, batch) == [True, True, False, False]
    assert store.get_decision(triage_conn, twice)["care_level"] == "self_care"
    assert store.get_decision(triage_conn, fresh)["input_snapshot"] == {"pain": {"severity": 3}}
    rows = triage_conn.execute("SELECT key, payload, traceparent FROM triage.outbox WHERE key = ANY(%s) ORDER BY id",
                               ([decided, twice, fresh],)).fetchall()
    assert [r[0] for r in rows] == [decided, twice, fresh]  # the batch's in its order
    assert [r[1]["data"]["care_level"] for r in rows] == ["specialist", "self_care", "urgent"]
    assert [r[2] for r in rows[1:]] == [batch[0].traceparent, batch[1].traceparent]


def test_decisions_and_their_events_are_compressed_with_lz4_where_the_server_has_it(triage_conn):
    # migration 002: pglz spent the drain's database time on events it then stored as they came
    expected = lz4_compression_letter(triage_conn)
    methods = dict(triage_conn.execute(
        "SELECT c.relnamespace::regnamespace::text || '.' || c.relname || '.' || attname, attcompression::text"
        " FROM pg_attribute JOIN pg_class c ON c.oid = attrelid"
        " WHERE (attrelid = 'triage.outbox'::regclass AND attname = 'payload')"
        " OR (attrelid = 'triage.decisions'::regclass AND atttypid = 'jsonb'::regtype)").fetchall())
    assert methods == {name: expected for name in ("triage.outbox.payload", "triage.decisions.fired",
                                                   "triage.decisions.possible_causes", "triage.decisions.notes",
                                                   "triage.decisions.advice", "triage.decisions.input_snapshot",
                                                   # migration 003 (issue 18)
                                                   "triage.decisions.advice_ids", "triage.decisions.safety_netting",
                                                   "triage.decisions.patient_text")}
