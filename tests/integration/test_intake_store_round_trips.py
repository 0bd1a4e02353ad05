"""The intake worker's store functions in their few-round-trip forms (issue 15), against the
real database: store.claim_reports (one call of migration 005's function) and
messages.store.tell_change (what is known, then the rows and their events in one statement
whose answer is not waited for). Called directly, in the order and the transactions the
worker's on_referral_event uses, so that each guarantee is checked where its SQL is.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.app_support import lz4_compression_letter
from tests.patient_message_support import message_events, message_rows

from services.common.db import pipelined
from services.intake import events, store
from services.intake.messages import store as message_store
from services.referral.events import (BOOKED_EVENT, CANCELLED_EVENT, LINKED_EVENT, RESCHEDULED_EVENT,
                                      WAITLISTED_EVENT, referral_event)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def conn(intake_settings):
    with psycopg.connect(intake_settings.database_url) as conn:  # not autocommit: the worker's transaction
        yield conn


@pytest.fixture
def other(intake_settings):
    with psycopg.connect(intake_settings.database_url, autocommit=True) as conn:
        yield conn


def add_report(conn, *, consent: list[str], referral_id: str | None = None,
               submitted_at: datetime = T0) -> str:
    report_id = str(uuid.uuid4())
    kiosk = conn.execute("INSERT INTO intake.kiosks (name, key_hash) VALUES (%s, %s) RETURNING kiosk_id",
                         (f"round-trips-{report_id}", f"hash-{report_id}")).fetchone()[0]
    conn.execute(
        "INSERT INTO intake.reports (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical,"
        " submitted_at, referral_id) VALUES (%s, %s, %s, 'x', %s, '{}', %s, %s)",
        (report_id, kiosk, report_id, Jsonb({"mrn": f"MRN-{report_id[:8]}", "phone": "+15550123",
                                              "email": f"p-{report_id[:8]}@example.org",
                                              "contact_consent": consent}), submitted_at, referral_id))
    conn.commit()
    return report_id


def booked(referral_id: str, report_id: str, sequence: int = 1, *, hour: int = 9, kind: str = BOOKED_EVENT) -> dict:
    """A referral snapshot as the worker hands it to the store (events.parse_referral_event)."""
    start = T0.replace(hour=hour) + timedelta(days=1)
    view = {"referral_id": referral_id, "report_id": report_id, "report_ids": [report_id], "care_level": "urgent",
            "priority": "urgent", "status": "booked", "sequence": sequence, "created_at": T0,
            "window_ends_at": T0 + timedelta(days=2),
            "appointment": {"slot_id": str(uuid.uuid4()), "start": start, "end": start + timedelta(minutes=30),
                            "provider": "Dr. Rui Costa", "location": "Clinic North"}}
    return events.parse_referral_event(referral_event(kind, view))


def apply(conn, data: dict) -> list:
    """on_referral_event's three steps, in one transaction."""
    referral_id = str(data["referral_id"])
    store.claim_reports(conn, referral_id, events.reports_named(data))
    rows = message_store.tell_change(conn, data, TRACEPARENT)
    store.record_referral(conn, referral_id, data, data["sequence"])
    conn.commit()
    return rows


def times(conn, message_id: str) -> tuple:
    return conn.execute("SELECT created_at, updated_at, next_attempt_at FROM intake.patient_messages"
                        " WHERE message_id = %s", (message_id,)).fetchone()


def test_each_channel_gets_a_row_and_one_event_that_says_what_the_row_holds(conn):
    referral_id = str(uuid.uuid4())
    report_id = add_report(conn, consent=["email", "sms"])
    returned = apply(conn, booked(referral_id, report_id))

    rows = message_rows(conn, referral_id)
    assert [(r["channel"], r["status"], r["sequence"], r["change"], r["report_id"]) for r in rows] == [
        ("email", "queued", 1, "booked", report_id), ("sms", "queued", 1, "booked", report_id)]
    assert sorted(r.message_id for r in returned) == sorted(r["message_id"] for r in rows)
    published = [e for e in message_events(conn, referral_id)]
    assert [e["data"]["channel"] for e in published] == ["email", "sms"]  # in the recipients' order
    for event in published:
        row, = [r for r in rows if r["message_id"] == event["data"]["message_id"]]
        created, updated, due = times(conn, row["message_id"])
        assert created == updated == due
        assert datetime.fromisoformat(event["data"]["at"]) == updated
        assert {k: event["data"][k] for k in ("referral_id", "report_id", "sequence", "change", "status", "detail",
                                             "attempts", "revision", "callback_phone")} == {
            "referral_id": referral_id, "report_id": report_id, "sequence": 1, "change": "booked",
            "status": "queued", "detail": None, "attempts": 0, "revision": 1, "callback_phone": None}
    traceparents = conn.execute(
        "SELECT DISTINCT traceparent FROM intake.outbox WHERE key = %s", (referral_id,)).fetchall()
    assert traceparents == [(TRACEPARENT,)]


def test_without_consent_the_phone_row_and_its_event_name_the_number(conn):
    referral_id = str(uuid.uuid4())
    report_id = add_report(conn, consent=[])
    apply(conn, booked(referral_id, report_id))
    row, = message_rows(conn, referral_id)
    assert (row["channel"], row["status"], row["detail"], row["recipient"]) == (
        "phone", "not_sent", message_store.NO_CONSENT, "+15550123")
    event, = message_events(conn, referral_id)
    assert (event["data"]["message_id"], event["data"]["callback_phone"]) == (row["message_id"], "+15550123")


def test_a_row_already_there_is_kept_and_not_published_again(conn):
    """A referral none of whose reports intake knows records no snapshot, so the same change
    comes out of a second delivery under another event id: the unique key keeps the first row
    and the statement adds no second event."""
    referral_id = str(uuid.uuid4())
    data = booked(referral_id, str(uuid.uuid4()))
    apply(conn, data)
    first, = message_rows(conn, referral_id)
    assert first["channel"] == "phone" and first["report_id"] is None

    again = apply(conn, data)
    assert [r.channel for r in again] == ["phone"]  # meant, not written: see tell_change
    assert message_rows(conn, referral_id) == [first]
    event, = message_events(conn, referral_id)
    assert event["data"]["message_id"] == first["message_id"]


def test_in_one_pipeline_the_three_steps_tell_a_move_once_and_record_the_snapshot(conn):
    """The handler's steps inside db.pipelined (as the worker may run them): nothing waits for
    the claim nor the rows, and the outcome is the same as statement by statement."""
    referral_id = str(uuid.uuid4())
    report_id = add_report(conn, consent=["email"])
    for data in (booked(referral_id, report_id, 1, hour=9), booked(referral_id, report_id, 2, hour=11,
                                                                   kind=RESCHEDULED_EVENT)):
        with pipelined(conn):
            store.claim_reports(conn, referral_id, events.reports_named(data))
            message_store.tell_change(conn, data, TRACEPARENT)
            store.record_referral(conn, referral_id, data, data["sequence"])
        conn.commit()
    assert [(r["sequence"], r["change"], r["channel"]) for r in message_rows(conn, referral_id)] == [
        (1, "booked", "email"), (2, "moved", "email")]
    assert [e["data"]["change"] for e in message_events(conn, referral_id)] == ["booked", "moved"]
    view = store.get_report(conn, report_id)
    assert view.referral["sequence"] == 2


def test_claim_reports_locks_the_referrals_known_and_named_reports_and_claims_the_named(conn, other):
    referral_id = str(uuid.uuid4())
    known = add_report(conn, consent=[], referral_id=referral_id)
    named = add_report(conn, consent=[], referral_id=str(uuid.uuid4()))  # another referral's, until now
    unrelated = add_report(conn, consent=[])

    store.claim_reports(conn, referral_id, [named])  # the transaction stays open: its locks are held
    for report_id in (known, named):
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT 1 FROM intake.reports WHERE report_id = %s FOR UPDATE NOWAIT", (report_id,))
    assert other.execute("SELECT 1 FROM intake.reports WHERE report_id = %s FOR UPDATE NOWAIT",
                         (unrelated,)).fetchone() == (1,)
    conn.commit()

    owners = dict(other.execute("SELECT report_id::text, referral_id::text FROM intake.reports"
                                " WHERE report_id = ANY(%s::uuid[])", ([known, named, unrelated],)).fetchall())
    assert owners == {known: referral_id, named: referral_id, unrelated: None}


def test_claim_reports_of_an_unknown_report_changes_nothing_and_does_not_fail(conn, other):
    referral_id = str(uuid.uuid4())
    store.claim_reports(conn, referral_id, [str(uuid.uuid4())])
    conn.commit()
    assert other.execute("SELECT count(*) FROM intake.reports WHERE referral_id = %s",
                         (referral_id,)).fetchone() == (0,)


def test_a_run_claims_for_each_event_the_reports_it_names_in_whatever_order_they_are_listed(conn, other):
    # migration 009 sorts the (report, event) pairs once and gives each event its slice: an
    # event naming none, pairs listed out of order, and events naming two are each claimed so
    reports = [add_report(conn, consent=[]) for _ in range(5)]
    referrals = [str(uuid.uuid4()) for _ in range(4)]
    named = [reports[3], reports[0], reports[4], reports[1], reports[2]]
    named_by = [4, 1, 4, 1, 2]  # event 3 names none
    snapshots = [Jsonb(booked(r, reports[0], 1)) for r in referrals]
    rows = conn.execute(
        "SELECT ordinal FROM intake.apply_referral_snapshots(%s::uuid[], %s::uuid[], %s::integer[], %s::jsonb[],"
        " %s::integer[])", (referrals, named, named_by, snapshots, [1, 1, 1, 1])).fetchall()
    conn.commit()

    assert [r[0] for r in rows] == [1, 2, 3, 4]
    owners = dict(other.execute("SELECT report_id::text, referral_id::text FROM intake.reports"
                                " WHERE report_id = ANY(%s::uuid[])", (reports,)).fetchall())
    assert owners == {reports[0]: referrals[0], reports[1]: referrals[0], reports[2]: referrals[1],
                      reports[3]: referrals[3], reports[4]: referrals[3]}


def test_report_and_event_json_are_compressed_with_lz4_where_the_server_has_it(conn):
    # migration 008: pglz spent the drain's database time on values it then stored as they came
    expected = lz4_compression_letter(conn)
    methods = dict(conn.execute(
        "SELECT c.relnamespace::regnamespace::text || '.' || c.relname || '.' || attname, attcompression::text"
        " FROM pg_attribute JOIN pg_class c ON c.oid = attrelid"
        " WHERE attrelid IN ('intake.reports'::regclass, 'intake.outbox'::regclass)"
        " AND attname IN ('patient', 'clinical', 'advice', 'referral', 'payload')").fetchall())
    assert methods == {name: expected for name in ("intake.reports.patient", "intake.reports.clinical",
                                                   "intake.reports.advice", "intake.reports.referral",
                                                   "intake.outbox.payload")}


# -- runs of events: store.record_decisions and store.apply_referral_events -------------------
def decision_data(report_id: str, care_level: str, decided_at: datetime) -> dict:
    """A decision as the worker hands it to the store (events.parse_decision: the data as sent)."""
    return {"report_id": report_id, "care_level": care_level, "advice": [f"advice for {care_level}"],
            "decided_at": decided_at.isoformat()}


def test_a_run_of_decisions_keeps_the_newest_of_each_report_whatever_their_order(conn, other):
    first, second, third = (add_report(conn, consent=[]) for _ in range(3))
    store.record_decision(conn, third, "specialist", ["stored"], T0.isoformat())
    conn.commit()
    store.record_decisions(conn, [
        decision_data(first, "specialist", T0 + timedelta(minutes=5)),
        decision_data(second, "urgent", T0),
        decision_data(first, "urgent", T0),                             # older than the run's first: ignored
        decision_data(second, "self_care", T0),                         # a tie: the later one, as one by one
        decision_data(third, "urgent", T0 - timedelta(minutes=1)),      # older than the stored one
        decision_data(str(uuid.uuid4()), "urgent", T0),                 # a report intake does not know
    ])
    conn.commit()
    found = {r.report_id: (r.care_level, r.advice) for r in (store.get_report(other, i) for i in (first, second, third))}
    assert found == {first: ("specialist", ["advice for specialist"]), second: ("self_care", ["advice for self_care"]),
                     third: ("specialist", ["stored"])}
    closed = other.execute("SELECT closed_at IS NOT NULL FROM intake.reports WHERE report_id = %s", (second,)).fetchone()
    assert closed == (True,)  # the retention trigger saw the update (self care, no referral)


def snapshot_data(referral_id: str, report_id: str, sequence: int, *, kind: str, status: str,
                  slot: int | None, linked: str | None = None) -> dict:
    """A referral snapshot (parsed); `slot` numbers the appointment (the same number, the same slot)."""
    appointment = None
    if slot is not None:
        start = T0 + timedelta(days=1, hours=slot)
        appointment = {"slot_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{referral_id}/{slot}")), "start": start,
                       "end": start + timedelta(minutes=30), "provider": "Dr. Rui Costa", "location": "Clinic North"}
    view = {"referral_id": referral_id, "report_id": report_id, "report_ids": [report_id], "care_level": "urgent",
            "priority": "urgent", "status": status, "sequence": sequence, "created_at": T0,
            "window_ends_at": T0 + timedelta(days=2), "appointment": appointment}
    return events.parse_referral_event(referral_event(kind, view, linked_report_id=linked))


def scenario(conn) -> tuple[dict, list[dict]]:
    """Two referrals' events interleaved, with what the worker must cope with: a link naming a
    second report (whose contact details then count), a move, a redelivery under a new event id,
    snapshots out of order, a cancellation. (names -> ids, the run's snapshots)"""
    ids = {"r1": str(uuid.uuid4()), "r2": str(uuid.uuid4())}
    ids["a"] = add_report(conn, consent=["email"], submitted_at=T0)
    ids["b"] = add_report(conn, consent=["sms"], submitted_at=T0 + timedelta(hours=1))
    ids["c"] = add_report(conn, consent=[], submitted_at=T0)
    r1, r2, a, b, c = (ids[k] for k in ("r1", "r2", "a", "b", "c"))
    run = [
        snapshot_data(r1, a, 1, kind=BOOKED_EVENT, status="booked", slot=1),
        snapshot_data(r2, c, 2, kind=WAITLISTED_EVENT, status="waitlisted", slot=None),   # its seq 1 never comes
        snapshot_data(r1, a, 2, kind=LINKED_EVENT, status="booked", slot=1, linked=b),
        snapshot_data(r1, a, 3, kind=RESCHEDULED_EVENT, status="booked", slot=2),
        snapshot_data(r1, a, 2, kind=LINKED_EVENT, status="booked", slot=1, linked=b),   # late, new event id
        snapshot_data(r2, c, 4, kind=CANCELLED_EVENT, status="cancelled", slot=None),
        snapshot_data(r2, c, 3, kind=BOOKED_EVENT, status="booked", slot=5),             # older than the last
        snapshot_data(r1, a, 4, kind=RESCHEDULED_EVENT, status="booked", slot=2),        # same slot: nothing told
    ]
    conn.commit()
    return ids, run


def outcome(conn, ids: dict) -> dict:
    names = {v: k for k, v in ids.items()}
    messages = sorted(
        (names[r["report_id"]], r["sequence"], r["change"], r["channel"], r["status"], r["recipient"] is not None)
        for referral in ("r1", "r2") for r in message_rows(conn, ids[referral]))
    published = sorted((e["data"]["sequence"], e["data"]["change"], e["data"]["channel"])
                       for referral in ("r1", "r2") for e in message_events(conn, ids[referral]))
    reports = {names[str(report_id)]: (names.get(str(referral_id)), sequence, status)
               for report_id, referral_id, sequence, status in conn.execute(
                   "SELECT report_id, referral_id, referral_sequence, referral ->> 'status' FROM intake.reports"
                   " WHERE report_id = ANY(%s::uuid[])", ([ids["a"], ids["b"], ids["c"]],))}
    return {"messages": messages, "published": published, "reports": reports}


def test_a_run_of_referral_events_ends_as_the_same_events_one_by_one(conn):
    one_ids, one_run = scenario(conn)
    for data in one_run:  # worker.on_referral_event's steps, one event after the other
        referral_id = str(data["referral_id"])
        store.claim_reports(conn, referral_id, events.reports_named(data))
        message_store.tell_change(conn, data, TRACEPARENT)
        store.record_referral(conn, referral_id, data, data["sequence"])
    conn.commit()
    run_ids, run = scenario(conn)
    written = store.apply_referral_events(conn, [(data, TRACEPARENT) for data in run])
    conn.commit()

    expected = outcome(conn, one_ids)
    assert outcome(conn, run_ids) == expected
    assert expected["messages"] == [  # what one by one tells, spelt out
        ("a", 1, "booked", "email", "queued", True),
        ("b", 3, "moved", "sms", "queued", True),        # the newest report's contact details, once linked
        ("c", 2, "waitlisted", "phone", "not_sent", True),
        ("c", 4, "cancelled", "phone", "not_sent", True),  # and the late seq 3 tells nothing
    ]
    assert expected["published"] == [(1, "booked", "email"), (2, "waitlisted", "phone"), (3, "moved", "sms"),
                                      (4, "cancelled", "phone")]
    assert expected["reports"] == {"a": ("r1", 4, "booked"), "b": ("r1", 4, "booked"), "c": ("r2", 4, "cancelled")}
    assert sorted((r.sequence, r.change, r.channel) for r in written) == sorted(
        (m[1], m[2], m[3]) for m in outcome(conn, run_ids)["messages"])


def test_a_run_in_one_pipeline_tells_the_same(conn):
    ids, run = scenario(conn)
    with pipelined(conn):
        store.apply_referral_events(conn, [(data, TRACEPARENT) for data in run[:4]])
        store.apply_referral_events(conn, [(data, TRACEPARENT) for data in run[4:]])
    conn.commit()
    other_ids, other_run = scenario(conn)
    store.apply_referral_events(conn, [(data, TRACEPARENT) for data in other_run])
    conn.commit()
    assert outcome(conn, ids) == outcome(conn, other_ids)


def test_a_run_locks_every_report_it_touches_until_it_commits(conn, other):
    ids, run = scenario(conn)
    store.apply_referral_events(conn, [(data, TRACEPARENT) for data in run[:1]])  # r1's first: names a only
    with pytest.raises(psycopg.errors.LockNotAvailable):
        other.execute("SELECT 1 FROM intake.reports WHERE report_id = %s FOR UPDATE NOWAIT", (ids["a"],))
    assert other.execute("SELECT 1 FROM intake.reports WHERE report_id = %s FOR UPDATE NOWAIT",
                         (ids["c"],)).fetchone() == (1,)
    conn.rollback()


def test_an_empty_run_does_nothing(conn):
    assert store.apply_referral_events(conn, []) == []
    store.record_decisions(conn, [])
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # not even a BEGIN
