"""The referral worker's patient messages a run at a time (services/referral/message_batch.py,
issue 15) on the real database: the same messages stored as one run and one by one
(worker.on_patient_message, each in its savepoint as the inbox did) leave the same rows and
flags and log the same lines (ids aside; a run's kept lines give the flag as the run left
it, not as it stood after each message); a message id of another referral, stored or in
the run, is refused as poison; the run waits for the server a fixed number of times
however many messages it holds."""
from __future__ import annotations

import logging
import tempfile
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import pq

from tests.referral_support import (decide, mrn, patient_message_event, referral_for_report)

from services.common.inbox import Delivery, PoisonEvent
from services.common.settings import TOPIC_PATIENT_MESSAGES
from services.referral import message_batch, worker

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PHONE = "+441632960777"
M = timedelta(minutes=1)


def delivery(event: dict) -> Delivery:
    return Delivery(topic=TOPIC_PATIENT_MESSAGES, partition=0, offset=0, key=event["data"]["referral_id"],
                    traceparent=TRACEPARENT)


def referral(conn, now) -> str:
    return referral_for_report(conn, decide(conn, "specialist", mrn(), now))["referral_id"]


def scenario(conn, now: datetime) -> tuple[dict[str, str], list[dict]]:
    """Referrals (names -> ids) and the message events of one run, in order: states out of
    order and repeated, a failure, a forgotten patient's phone, a patient reached after one
    failure and before another, and a referral that is not here (yet)."""
    with conn.transaction():
        names = {"plain": referral(conn, now), "forgotten": referral(conn, now), "reached": referral(conn, now),
                 "unknown": str(uuid.uuid4())}
        conn.execute("UPDATE referral.referrals SET pseudonymised_at = now() WHERE referral_id = %s",
                     (names["forgotten"],))
        conn.execute("UPDATE referral.referrals SET contacted_at = %s WHERE referral_id = %s",
                     (now + 5 * M, names["reached"]))
    email, sms, lost, early, late, stray = (str(uuid.uuid4()) for _ in range(6))

    def state(name, message_id, status, revision, minutes, **extra):
        return patient_message_event(names[name], message_id=message_id, status=status, revision=revision,
                                     at=now + minutes * M, **extra)

    sms_failed = state("plain", sms, "failed", 2, 2, channel="sms", callback_phone=PHONE)
    events = [
        state("plain", email, "queued", 1, 0),
        sms_failed,
        state("plain", sms, "queued", 1, 0, channel="sms"),         # late: older than what came before
        state("plain", email, "sent", 2, 1),
        {**sms_failed, "id": str(uuid.uuid4())},                   # the same state again
        state("forgotten", lost, "failed", 1, 1, channel="sms", callback_phone=PHONE),
        state("reached", early, "failed", 1, 1, channel="sms"),     # before the patient was reached
        state("reached", late, "queued", 1, 6),
        state("reached", late, "uncertain", 3, 8),                 # after: contact needed again
        state("reached", late, "sent", 2, 7),                      # late again
        state("unknown", stray, "sent", 1, 1),
    ]
    return names, events


def one_by_one(conn, events: list[dict]) -> None:
    for event in events:
        with conn.transaction():
            worker.on_patient_message(conn, event, delivery(event))


def together(conn, events: list[dict]) -> None:
    with conn.transaction():
        message_batch.write(conn, [message_batch.prepare(event, delivery(event)) for event in events])


def outcome(conn, names: dict[str, str], events: list[dict], logs: list[logging.LogRecord]):
    """The rows, flags and log lines, with ids replaced by names."""
    by_id = {referral_id: name for name, referral_id in names.items()}
    message_names = {}
    for event in events:
        message_names.setdefault(event["data"]["message_id"], f"message {len(message_names)}")
    rows = conn.execute(
        "SELECT message_id::text, referral_id::text, status, revision, at, detail, attempts, callback_phone"
        " FROM referral.patient_messages WHERE referral_id = ANY(%s::uuid[])",
        (list(names.values()),)).fetchall()
    flags = conn.execute("SELECT referral_id::text, contact_needed FROM referral.referrals"
                         " WHERE referral_id = ANY(%s::uuid[])", (list(names.values()),)).fetchall()
    lines = [{key: (by_id.get(value) or message_names.get(value, value)) if isinstance(value, str) else value
              for key, value in vars(r).items() if key in ("referral_id", "message_id", "status", "revision",
                                                           "kept", "referral_known")}
             for r in logs if r.getMessage() == "patient message" and r.__dict__.get("referral_id") in by_id]
    return (sorted((message_names[m], by_id[r], *rest) for m, r, *rest in rows),
            sorted((by_id[r], needed) for r, needed in flags), lines)


def test_a_run_of_messages_leaves_what_the_messages_one_by_one_leave(ref_conn, now, caplog):
    caplog.set_level(logging.INFO, logger="services.referral")
    results = []
    for apply in (one_by_one, together):
        names, events = scenario(ref_conn, now)
        caplog.clear()
        apply(ref_conn, events)
        results.append(outcome(ref_conn, names, events, caplog.records))
    assert results[0] == results[1]
    rows, flags, lines = results[1]
    final = dict(flags)
    assert [r.__dict__["contact_needed"] for r in caplog.records if r.getMessage() == "patient message"] == [
        final[line["referral_id"]] if line["kept"] and line["referral_known"] else None for line in lines]
    assert flags == [("forgotten", True), ("plain", True), ("reached", True)]
    assert [(m, r, status, revision) for m, r, status, revision, *_ in rows] == [
        ("message 0", "plain", "sent", 2), ("message 1", "plain", "failed", 2),
        ("message 2", "forgotten", "failed", 1), ("message 3", "reached", "failed", 1),
        ("message 4", "reached", "uncertain", 3), ("message 5", "unknown", "sent", 1)]
    assert [phone for *_, phone in rows] == [None, PHONE, None, None, None, None]  # the forgotten one's dropped
    assert [line["kept"] for line in lines] == [True, True, False, True, False, True, True, True, True, False, True]


def test_a_patient_reached_after_every_failure_needs_no_call(ref_conn, now):
    names, _ = scenario(ref_conn, now)
    failed = patient_message_event(names["reached"], status="failed", at=now + M)  # before contacted_at
    together(ref_conn, [failed])
    needed = ref_conn.execute("SELECT contact_needed FROM referral.referrals WHERE referral_id = %s",
                              (names["reached"],)).fetchone()[0]
    assert needed is False


def test_a_message_id_of_another_referral_is_poison_stored_or_in_the_run(ref_conn, now):
    names, _ = scenario(ref_conn, now)
    first = patient_message_event(names["plain"], status="queued")
    together(ref_conn, [first])
    stolen = patient_message_event(names["reached"], message_id=first["data"]["message_id"], revision=2)
    with pytest.raises(PoisonEvent, match="already known for another referral_id"):
        together(ref_conn, [patient_message_event(names["reached"]), stolen])
    twice = str(uuid.uuid4())
    with pytest.raises(PoisonEvent, match="already known for another referral_id"):
        together(ref_conn, [patient_message_event(names["plain"], message_id=twice),
                            patient_message_event(names["reached"], message_id=twice, revision=2)])
    stored = ref_conn.execute("SELECT referral_id::text, revision FROM referral.patient_messages WHERE message_id"
                              " = ANY(%s::uuid[])", ([first["data"]["message_id"], twice],)).fetchall()
    assert stored == [(names["plain"], 1)]  # the refused runs were rolled back whole


def waits(trace: str) -> int:
    """Times the client sent its queued messages, then read answers (libpq trace F..., B...)."""
    sides = [line.split("\t", 1)[0] for line in trace.splitlines() if line[:2] in ("F\t", "B\t")]
    return sum(1 for before, after in zip(sides, sides[1:]) if (before, after) == ("F", "B"))


@pytest.mark.parametrize("count", [1, 40])
def test_a_run_waits_for_the_server_four_times_however_long(referral_settings, ref_conn, now, count):
    """Lock the referrals, store the states, read the messages of the referrals that kept
    one, set their flags."""
    referral_ids = [referral(ref_conn, now) for _ in range(2)]
    events = [patient_message_event(referral_ids[k % 2], status="failed", at=datetime.now(UTC)) for k in range(count)]
    prepared = [message_batch.prepare(event, delivery(event)) for event in events]
    with psycopg.connect(referral_settings.database_url) as conn, tempfile.TemporaryFile("w+") as trace:
        conn.execute("SELECT 1").fetchone()
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            message_batch.write(conn, prepared)
        finally:
            conn.pgconn.untrace()
        conn.commit()
        trace.seek(0)
        text = trace.read()
    assert waits(text) == 4
    stored = ref_conn.execute("SELECT count(*) FROM referral.patient_messages WHERE referral_id = ANY(%s::uuid[])",
                              (referral_ids,)).fetchone()[0]
    assert stored == count
