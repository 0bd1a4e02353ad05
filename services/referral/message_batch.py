"""Patient messages a run at a time (issue 15): the worker's BatchHandler (services/common/
inbox.py) for `clinic.patient-messages.v1`, doing what contact.record_message does to each
message of the run, in order, in four statements whatever the run's length (a message at a
time took four round trips each: under load most of the referral consumer's time, and every
decision behind them waited).

- The run's referrals are locked first, in id order (a message and a scheduler marking the
  patient contacted cannot leave a stale flag behind, as in contact.py).
- Of each message, the state kept is the highest revision of the run (the first of equal
  ones), stored only if it supersedes the stored one: the same guard as
  contact_store.save_message, so the end state is the one the messages one by one leave.
- Each referral that kept a state gets its "contact needed" flag computed again once, from
  all its messages as they now stand.
- A message id that belongs to another referral (stored, or earlier in the run) raises
  PoisonEvent: the inbox then applies the run event by event (this handler with one event),
  which dead-letters exactly that one.
- Each message is logged as record_message logs it (kept as if one by one), but a kept
  message's contact_needed is the flag as the run left it, not as it stood after that message.
"""
from __future__ import annotations

import dataclasses
import logging

import psycopg

from services.common.db import pipelined
from services.common.inbox import Delivery, PoisonEvent

from .domain.contact import PatientMessage, contact_needed
from .contact_store import messages_of
from .events import parse_patient_message

log = logging.getLogger(__name__)

ANOTHER_REFERRAL = "patient message event data invalid: message_id: already known for another referral_id"

_FIELDS = ("message_id", "referral_id", "report_id", "sequence", "change", "channel", "status", "detail",
           "attempts", "revision", "at", "callback_phone")
_TYPES = ("uuid", "uuid", "uuid", "int", "text", "text", "text", "text", "int", "int", "timestamptz", "text")
_UPDATES = ", ".join(f"{name} = EXCLUDED.{name}" for name in _FIELDS[3:])
# The stored state as it was before the statement (a CTE reads the statement's snapshot):
# another referral's message id is refused, and which states were kept is told from it.
SAVE_SQL = (
    f"WITH input AS (SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) AS i ({', '.join(_FIELDS)})),"
    " stored AS (SELECT m.message_id, m.referral_id, m.revision FROM referral.patient_messages m"
    "  WHERE m.message_id IN (SELECT message_id FROM input)),"
    f" saved AS (INSERT INTO referral.patient_messages ({', '.join(_FIELDS)}) SELECT * FROM input"
    f"  ON CONFLICT (message_id) DO UPDATE SET {_UPDATES}, received_at = now()"
    "   WHERE referral.patient_messages.revision < EXCLUDED.revision"
    "     AND referral.patient_messages.referral_id = EXCLUDED.referral_id"
    "  RETURNING message_id)"
    " SELECT i.message_id::text, s.referral_id::text, s.revision, i.message_id IN (SELECT message_id FROM saved)"
    " FROM input i LEFT JOIN stored s USING (message_id)")


def prepare(event: dict, delivery: Delivery) -> PatientMessage:
    """One message's state, checked; no I/O."""
    return parse_patient_message(event)


def _newest(messages: list[PatientMessage]) -> dict[str, PatientMessage]:
    """message id -> the state the run leaves (the highest revision, the first of equal ones)."""
    newest: dict[str, PatientMessage] = {}
    for message in messages:
        known = newest.get(message.message_id)
        if known is not None and known.referral_id != message.referral_id:
            raise PoisonEvent(ANOTHER_REFERRAL)
        if known is None or message.revision > known.revision:
            newest[message.message_id] = message
    return newest


def write(conn: psycopg.Connection, messages: list[PatientMessage]) -> None:
    """Keep the newest state of each message and refresh the flags, in the caller's transaction."""
    referral_ids = sorted({m.referral_id for m in messages})
    with pipelined(conn):
        states = {referral_id: (contacted_at, pseudonymised) for referral_id, contacted_at, pseudonymised in
                  conn.execute("SELECT referral_id::text, contacted_at, pseudonymised_at IS NOT NULL"
                               " FROM referral.referrals WHERE referral_id = ANY(%s::uuid[])"
                               " ORDER BY referral_id FOR UPDATE", (referral_ids,)).fetchall()}
        # A late message of a referral whose patient is already forgotten: keep no phone.
        messages = [m if not states.get(m.referral_id, (None, False))[1] or m.callback_phone is None
                    else _without_phone(m) for m in messages]
        newest = _newest(messages)
        rows = conn.execute(SAVE_SQL, [[getattr(m, name) for m in newest.values()] for name in _FIELDS]).fetchall()
        stored = {message_id: (referral, revision) for message_id, referral, revision, _saved in rows}
        saved = {message_id for message_id, _r, _rev, was_saved in rows if was_saved}
        if any(referral is not None and referral != newest[message_id].referral_id
               for message_id, (referral, _rev) in stored.items()):
            raise PoisonEvent(ANOTHER_REFERRAL)
        refresh = sorted({newest[message_id].referral_id for message_id in saved} & set(states))
        needed = {}
        if refresh:
            stood = messages_of(conn, refresh)
            needed = {referral_id: contact_needed(stood[referral_id], states[referral_id][0]) for referral_id in refresh}
            conn.execute("UPDATE referral.referrals r SET contact_needed = v.needed"
                         " FROM unnest(%s::uuid[], %s::bool[]) AS v (referral_id, needed)"
                         " WHERE r.referral_id = v.referral_id AND r.contact_needed <> v.needed",
                         (list(needed), list(needed.values())))
    _log_each(messages, stored, states, needed)


def _without_phone(message: PatientMessage) -> PatientMessage:
    return dataclasses.replace(message, callback_phone=None)


def _log_each(messages: list[PatientMessage], stored: dict, states: dict, needed: dict) -> None:
    """What contact.record_message logs of each message, as if they had come one by one: kept
    when it superseded the state stored before it (ids and states only: no patient data)."""
    current = {message_id: revision for message_id, (_referral, revision) in stored.items()}
    for message in messages:
        before = current.get(message.message_id)
        kept = before is None or message.revision > before
        if kept:
            current[message.message_id] = message.revision
        log.info("patient message", extra={
            "referral_id": message.referral_id, "message_id": message.message_id, "status": message.status,
            "revision": message.revision, "kept": kept, "referral_known": message.referral_id in states,
            "contact_needed": needed.get(message.referral_id) if kept and message.referral_id in states else None})
