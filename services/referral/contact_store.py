"""Referral's SQL for patient messages and contacts (docs/patient-messages.md): the newest
state of each message, when a person last reached the patient, and the referral's
"contact needed" flag, which is domain.contact.contact_needed of the two, kept on the
referral row so that the queue can filter on it through an index.

The flag is computed again, under the referral's row lock, whenever one of its inputs
changes: a message state stored, the patient marked contacted, the referral made (a
message that came before it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row

from .domain.contact import PatientMessage, callback_phone, contact_needed

_MESSAGE = ("message_id::text, referral_id::text, report_id::text, sequence, change, channel, status, detail,"
            " attempts, revision, at, callback_phone")
_MESSAGE_FIELDS = ("message_id", "referral_id", "report_id", "sequence", "change", "channel", "status", "detail",
                   "attempts", "revision", "at", "callback_phone")


class MessageOfAnotherReferral(ValueError):
    """A message id already stored for another referral: not a newer state of that message."""


@dataclass(frozen=True)
class ContactState:
    """What a message or a contact is checked against, read under the referral's lock."""
    contacted_at: datetime | None
    pseudonymised: bool


def lock_contact_state(conn: psycopg.Connection, referral_id: str) -> ContactState | None:
    """The referral's contact state, its row locked; None when there is no such referral."""
    row = conn.execute("SELECT contacted_at, pseudonymised_at IS NOT NULL FROM referral.referrals"
                       " WHERE referral_id = %s FOR UPDATE", (referral_id,)).fetchone()
    return ContactState(*row) if row else None


def save_message(conn: psycopg.Connection, message: PatientMessage) -> bool:
    """Store this state of the message if it supersedes the stored one (domain.contact.supersedes:
    a strictly newer revision, the upsert's guard); whether it did. One statement.

    The guard keeps a newer state even when two first deliveries of one message race
    (neither saw the other's row). The stored row is read as it was before the upsert, only
    to tell a message id of another referral (refused by the guard too) from an old state."""
    values = [getattr(message, name) for name in _MESSAGE_FIELDS]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _MESSAGE_FIELDS[3:])
    stored_referral, saved = conn.execute(
        "WITH stored AS (SELECT referral_id::text FROM referral.patient_messages WHERE message_id = %s),"
        f" saved AS (INSERT INTO referral.patient_messages ({', '.join(_MESSAGE_FIELDS)})"
        f"  VALUES ({', '.join(['%s'] * len(values))})"
        f"  ON CONFLICT (message_id) DO UPDATE SET {updates}, received_at = now()"
        "   WHERE referral.patient_messages.revision < EXCLUDED.revision"
        "     AND referral.patient_messages.referral_id = EXCLUDED.referral_id"
        "  RETURNING message_id)"
        " SELECT (SELECT referral_id FROM stored), EXISTS (SELECT 1 FROM saved)",
        [message.message_id, *values]).fetchone()
    if stored_referral is not None and stored_referral != message.referral_id:
        raise MessageOfAnotherReferral(message.message_id)
    return saved


def messages_of(conn: psycopg.Connection, referral_ids: Iterable[str]) -> dict[str, list[PatientMessage]]:
    """Each referral's messages, oldest state first (every id given has a list, maybe empty)."""
    ids = list(referral_ids)
    found: dict[str, list[PatientMessage]] = {referral_id: [] for referral_id in ids}
    if not ids:
        return found
    rows = conn.execute(f"SELECT {_MESSAGE} FROM referral.patient_messages WHERE referral_id = ANY(%s::uuid[])"
                        " ORDER BY referral_id, at, message_id", (ids,)).fetchall()
    for row in rows:
        message = PatientMessage(*row)
        found[message.referral_id].append(message)
    return found


def refresh_contact_needed(conn: psycopg.Connection, referral_id: str, contacted_at: datetime | None) -> bool:
    """Set the referral's flag from its messages and `contacted_at` (read under its lock)."""
    needed = contact_needed(messages_of(conn, [referral_id])[referral_id], contacted_at)
    conn.execute("UPDATE referral.referrals SET contact_needed = %s WHERE referral_id = %s AND contact_needed <> %s",
                 (needed, referral_id, needed))
    return needed


def record_contact(conn: psycopg.Connection, referral_id: str, at: datetime, actor: str, note: str | None) -> None:
    """Append who reached the patient, and move the referral's contacted_at to `at`."""
    conn.execute("INSERT INTO referral.patient_contacts (referral_id, at, actor, note) VALUES (%s, %s, %s, %s)",
                 (referral_id, at, actor, note))
    conn.execute("UPDATE referral.referrals SET contacted_at = GREATEST(contacted_at, %s) WHERE referral_id = %s",
                 (at, referral_id))


def contacts_of(conn: psycopg.Connection, referral_id: str) -> list[dict]:
    """Every time the patient was marked reached, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT at, actor, note FROM referral.patient_contacts WHERE referral_id = %s"
                           " ORDER BY at, contact_id", (referral_id,)).fetchall()
    return [{**row, "at": row["at"].astimezone(UTC)} for row in rows]


# -- views ---------------------------------------------------------------------------------
def _message_view(message: PatientMessage) -> dict:
    return {"message_id": message.message_id, "change": message.change, "channel": message.channel,
            "status": message.status, "detail": message.detail, "attempts": message.attempts,
            "at": message.at.astimezone(UTC)}


def add_messages(conn: psycopg.Connection, views: list[dict]) -> None:
    """Fill each referral view's `contact` (store._view: needed, contacted_at) with its
    messages and the phone to call back on; one query for the whole page."""
    messages = messages_of(conn, [view["referral_id"] for view in views])
    for view in views:
        mine = messages[view["referral_id"]]
        view["contact"]["messages"] = [_message_view(message) for message in mine]
        view["contact"]["callback_phone"] = callback_phone(mine)


# -- retention ------------------------------------------------------------------------------
def forget_identity(conn: psycopg.Connection, referral_ids: list) -> None:
    """The purge's part here (store.pseudonymise_batch): the phone to call back on, and the
    schedulers' notes of reaching the patient (free text that may well name or number them)."""
    conn.execute("UPDATE referral.patient_messages SET callback_phone = NULL"
                 " WHERE referral_id = ANY(%s::uuid[]) AND callback_phone IS NOT NULL", (referral_ids,))
    conn.execute("UPDATE referral.patient_contacts SET note = NULL WHERE referral_id = ANY(%s::uuid[])"
                 " AND note IS NOT NULL", (referral_ids,))
