"""Patient messages' SQL: the rows the worker writes when a referral changes, and the
states the sender moves them through. Every state a message reaches is published, in the
same transaction, as a `clinic.patient.message` event through intake's outbox.

States: queued -> sending -> sent | failed | uncertain | queued (a retry, later);
queued -> not_sent (no server configured, no address); `phone` rows start not_sent.
`sending` is the sender's own and is not published: a row left in it by a sender that is
gone becomes `uncertain`, never queued again (the patient may have been told).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from services.common import metrics, outbox
from services.common.envelope import new_traceparent
from services.common.report_vocabulary import DEFAULT_LANGUAGE, REPORT_LANGUAGES
from services.common.settings import TOPIC_PATIENT_MESSAGES

from .. import events
from .changes import change_to_tell
from .contact import PHONE, recipients

SCHEMA = "intake"
WAKE_CHANNEL = "intake_patient_messages"  # NOTIFY: new rows for the sender
NO_CONSENT = "no consented channel: a person must call the patient"

_COLUMNS = ("message_id::text, referral_id::text, report_id::text, sequence, change, channel, status, detail,"
            " attempts, revision, updated_at, recipient, appointment, content, language")


@dataclass(frozen=True)
class MessageRow:
    message_id: str
    referral_id: str
    report_id: str | None
    sequence: int
    change: str
    channel: str
    status: str
    detail: str | None
    attempts: int
    revision: int
    updated_at: datetime
    recipient: str | None
    appointment: dict | None
    content: dict | None
    language: str = DEFAULT_LANGUAGE  # fixed when the change was told: the words are composed in it


# The states after which a person must phone the patient (docs/patient-messages.md).
NEEDS_A_CALL = ("failed", "uncertain", "not_sent")


def callback_phone(conn: psycopg.Connection, row: MessageRow) -> str | None:
    """The number a scheduler calls, sent only with a state that needs a call: the SMS's or
    phone row's own number, else (a failed email) the phone the patient gave, if any."""
    if row.status not in NEEDS_A_CALL:
        return None
    if row.channel != "email":
        return row.recipient
    found = conn.execute("SELECT patient ->> 'phone' FROM intake.reports WHERE report_id = %s",
                         (row.report_id,)).fetchone() if row.report_id else None
    return (found[0] or None) if found else None


def _event(conn: psycopg.Connection, row: MessageRow) -> dict:
    return events.patient_message_event(
        message_id=row.message_id, referral_id=row.referral_id, report_id=row.report_id, sequence=row.sequence,
        change=row.change, channel=row.channel, status=row.status, detail=row.detail, attempts=row.attempts,
        revision=row.revision, at=row.updated_at.isoformat(), callback_phone=callback_phone(conn, row))


def _count(row: MessageRow) -> None:
    if row.status != "queued":
        metrics.PATIENT_MESSAGES.labels(row.channel, row.status).inc()


def _publish(conn: psycopg.Connection, row: MessageRow, traceparent: str | None) -> None:
    with conn.cursor() as cur:
        outbox.add_event(cur, SCHEMA, topic=TOPIC_PATIENT_MESSAGES, key=row.referral_id, event=_event(conn, row),
                         traceparent=traceparent or new_traceparent())
    _count(row)


# -- the worker: a referral snapshot arrives (inside its inbox transaction) -----------------
@dataclass(frozen=True)
class ReferralKnown:
    """What intake knows of a referral before its next snapshot is recorded."""
    previous: dict | None       # the newest snapshot recorded, on any of its reports
    report_id: str | None       # its newest report known to belong to it...
    patient: dict | None        # ...and that report's `patient`: the latest contact details
    now: datetime | None = None  # the transaction's now(): the new rows' updated_at
    language: str = DEFAULT_LANGUAGE  # ...and the language that report was filled in: the messages'


def referral_known(conn: psycopg.Connection, referral_id: str) -> ReferralKnown:
    """One statement (its reports, which store.claim_reports locked: the same referral's next
    event, or the purge, waits), with the transaction's now() that tell_change's rows take.
    The read is intake.referral_known (migrations 006, 011), which store.apply_referral_events runs too."""
    previous, report_id, patient, now, language = conn.execute(
        "SELECT k.previous, k.newest_report_id, k.newest_patient, now(), k.newest_language"
        " FROM intake.referral_known(%s::uuid) AS k", (referral_id,)).fetchone()
    return known_of(referral_id, previous, report_id, patient, now, language)


def known_of(referral_id: str, previous: dict | None, report_id: str | None, patient: dict | None,
             now: datetime, language: str | None) -> ReferralKnown:
    """ReferralKnown from intake.referral_known's row: a newest snapshot of another referral
    (on a report this one has just claimed from it) is no previous snapshot of this one. The
    messages take the language of the report whose patient they use; with no report (None), or
    a language the messages have no words for, English."""
    if previous is not None and previous.get("referral_id") != referral_id:
        previous = None
    language = language if language in REPORT_LANGUAGES else DEFAULT_LANGUAGE
    return ReferralKnown(previous, report_id, patient, now, language)


# The rows of a run of changes (one per change and channel) and their events, in ONE statement
# that the caller does not wait for: a row already there (same referral, sequence and channel)
# is left as it is and its event is not added (the join with `written`). The outbox columns are
# those of services/common/outbox.add_event, whose NOTIFY goes with the sender's; the payloads go
# as binary arrays (%b): psycopg's text array form is ~10 times slower to build (escaping in Python).
_TELL = (
    "WITH new (ordinal, message_id, referral_id, report_id, sequence, change, channel, recipient, appointment,"
    "  status, detail, language, event_id, payload, traceparent) AS ("
    "  SELECT * FROM unnest(%(ordinals)b::integer[], %(message_ids)b::uuid[], %(referral_ids)b::uuid[],"
    "   %(report_ids)b::uuid[], %(sequences)b::integer[], %(changes)b::text[], %(channels)b::text[],"
    "   %(recipients)b::text[], %(appointments)b::jsonb[], %(statuses)b::text[], %(details)b::text[],"
    "   %(languages)b::text[], %(event_ids)b::uuid[], %(payloads)b::jsonb[], %(traceparents)b::text[])),"
    " written AS (INSERT INTO intake.patient_messages (message_id, referral_id, report_id, sequence, change,"
    "   channel, recipient, appointment, status, detail, language, created_at, updated_at, next_attempt_at)"
    "  SELECT message_id, referral_id, report_id, sequence, change, channel, recipient, appointment, status,"
    "   detail, language, %(now)s::timestamptz, %(now)s::timestamptz, %(now)s::timestamptz FROM new ORDER BY ordinal"
    "  ON CONFLICT ON CONSTRAINT patient_messages_once DO NOTHING RETURNING message_id),"
    " published AS (INSERT INTO intake.outbox (event_id, topic, key, payload, traceparent)"
    "  SELECT new.event_id, %(topic)s::text, new.referral_id::text, new.payload, new.traceparent"
    "  FROM new JOIN written USING (message_id) ORDER BY new.ordinal)"
    " SELECT pg_notify(%(outbox_channel)s::text, ''), pg_notify(%(wake_channel)s::text, '')")


def tell_change(conn: psycopg.Connection, snapshot: dict, traceparent: str | None) -> list[MessageRow]:
    """Before the snapshot is recorded, once its reports are claimed (store.claim_reports): if
    it tells the patient something, one row per channel, each with its event, written once
    whatever is delivered twice (the unique key). The rows it writes (a channel whose row is
    there already keeps it, unpublished again, though it is listed and counted).

    Two statements: what is known (read), then the rows and their events in one statement
    whose answer nobody waits for, so that in a pipeline (db.pipelined) it costs no round trip."""
    known = referral_known(conn, str(snapshot["referral_id"]))
    return tell_changes(conn, [(snapshot, known, traceparent)])


def tell_changes(conn: psycopg.Connection, told: list[tuple[dict, ReferralKnown, str | None]]) -> list[MessageRow]:
    """tell_change for several snapshots, each with what was known just before it (in the order
    given), in one statement not waited for (none if nothing is to be told). The rows it writes,
    as tell_change says."""
    rows, payloads, traceparents = [], [], []
    for snapshot, known, traceparent in told:
        change = change_to_tell(known.previous, snapshot)
        if change is None:
            continue
        traceparent = traceparent or new_traceparent()
        appointment = change.appointment.as_json() if change.appointment else None
        for recipient in recipients(known.patient):
            status, detail = ("not_sent", NO_CONSENT) if recipient.channel == PHONE else ("queued", None)
            row = MessageRow(
                message_id=str(uuid.uuid4()), referral_id=str(snapshot["referral_id"]), report_id=known.report_id,
                sequence=change.sequence, change=change.kind, channel=recipient.channel, status=status,
                detail=detail, attempts=0, revision=1, updated_at=known.now, recipient=recipient.address,
                appointment=appointment, content=None, language=known.language)
            rows.append(row)
            payloads.append(_event(conn, row))
            traceparents.append(traceparent)
    if not rows:
        return []
    conn.execute(_TELL, {
        "ordinals": list(range(len(rows))), "message_ids": [r.message_id for r in rows],
        "referral_ids": [r.referral_id for r in rows], "report_ids": [r.report_id for r in rows],
        "sequences": [r.sequence for r in rows], "changes": [r.change for r in rows],
        "channels": [r.channel for r in rows], "recipients": [r.recipient for r in rows],
        "appointments": [Jsonb(r.appointment) if r.appointment else None for r in rows],
        "statuses": [r.status for r in rows], "details": [r.detail for r in rows],
        "languages": [r.language for r in rows],
        "event_ids": [e["id"] for e in payloads], "payloads": [Jsonb(e) for e in payloads],
        "traceparents": traceparents, "now": rows[0].updated_at, "topic": TOPIC_PATIENT_MESSAGES,
        "outbox_channel": outbox.outbox_channel(SCHEMA), "wake_channel": WAKE_CHANNEL})
    for row in rows:
        _count(row)
    return rows


# -- the sender --------------------------------------------------------------------------
def claim_next(conn: psycopg.Connection) -> MessageRow | None:
    """The oldest due queued row, locked (SKIP LOCKED: another sender takes another row).
    Call inside a transaction, then mark it sending or finish it in the same one."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM intake.patient_messages WHERE status = 'queued' AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
    return MessageRow(*row) if row else None


def mark_sending(conn: psycopg.Connection, message_id: str, sender: int, content: dict) -> None:
    conn.execute(
        "UPDATE intake.patient_messages SET status = 'sending', sender = %s, attempts = attempts + 1,"
        " content = %s, updated_at = now() WHERE message_id = %s AND status = 'queued'",
        (sender, Jsonb(content), message_id))


def finish_queued(conn: psycopg.Connection, message_id: str, status: str, detail: str) -> MessageRow | None:
    """A queued row that no channel can carry (not_sent), published."""
    return _move(conn, message_id, "status = 'queued'", (), status=status, detail=detail)


def record_outcome(conn: psycopg.Connection, message_id: str, sender: int, status: str, detail: str | None,
                   retry_in_s: float | None = None) -> MessageRow | None:
    """What became of a delivery this sender started: sent, failed, uncertain, or queued
    again `retry_in_s` from now. None when the row is no longer this sender's (it was found
    orphaned meanwhile, and is uncertain)."""
    return _move(conn, message_id, "status = 'sending' AND sender = %s", (sender,), status=status, detail=detail,
                 retry_in_s=retry_in_s)


def _move(conn, message_id: str, guard: str, guard_args: tuple, *, status: str, detail: str | None,
          retry_in_s: float | None = None) -> MessageRow | None:
    row = conn.execute(
        "UPDATE intake.patient_messages SET status = %s, detail = %s, sender = NULL, revision = revision + 1,"
        " next_attempt_at = CASE WHEN %s::float8 IS NULL THEN next_attempt_at"
        "                        ELSE now() + %s::float8 * interval '1 second' END,"
        f" updated_at = now() WHERE message_id = %s AND {guard} RETURNING {_COLUMNS}",
        (status, detail, retry_in_s, retry_in_s, message_id, *guard_args)).fetchone()
    if row is None:
        return None
    moved = MessageRow(*row)
    _publish(conn, moved, None)
    return moved


def senders_in_flight(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT sender FROM intake.patient_messages WHERE status = 'sending' AND sender IS NOT NULL")]


def orphans_uncertain(conn: psycopg.Connection, sender: int, detail: str) -> int:
    """The rows a gone sender left `sending` become uncertain (published); how many."""
    rows = conn.execute(
        "SELECT message_id::text FROM intake.patient_messages WHERE status = 'sending' AND sender = %s"
        " FOR UPDATE SKIP LOCKED", (sender,)).fetchall()
    return sum(1 for (message_id,) in rows
               if _move(conn, message_id, "status = 'sending' AND sender = %s", (sender,), status="uncertain",
                        detail=detail) is not None)


def queued_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM intake.patient_messages WHERE status = 'queued'").fetchone()[0]
