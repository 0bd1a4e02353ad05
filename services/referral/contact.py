"""Contacting patients, the referral side (docs/patient-messages.md): keep what intake says
it told each patient, and what schedulers say when they have reached one by phone.

Both run in the caller's transaction and take the referral's row lock first, so a message
arriving while a scheduler marks the patient contacted cannot leave a stale flag behind.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

import psycopg

from . import contact_store
from .booking import UnknownReferral
from .domain.contact import PatientMessage

log = logging.getLogger(__name__)


def record_message(conn: psycopg.Connection, message: PatientMessage) -> bool:
    """Keep this state of a message if it is the newest; whether it was kept.

    A message whose referral is not (yet) here is kept too, without a flag to set: the flag
    is computed when the referral is made (booking.apply_decision). Raises
    contact_store.MessageOfAnotherReferral for a message id known under another referral."""
    state = contact_store.lock_contact_state(conn, message.referral_id)
    if state is not None and state.pseudonymised:
        # A late message of a referral whose patient is already forgotten: keep no phone.
        message = dataclasses.replace(message, callback_phone=None)
    kept = contact_store.save_message(conn, message)
    needed = None
    if kept and state is not None:
        needed = contact_store.refresh_contact_needed(conn, message.referral_id, state.contacted_at)
    # Ids and states only: no phone, no detail (logs hold no patient data).
    log.info("patient message", extra={"referral_id": message.referral_id, "message_id": message.message_id,
                                       "status": message.status, "revision": message.revision, "kept": kept,
                                       "referral_known": state is not None, "contact_needed": needed})
    return kept


def mark_contacted(conn: psycopg.Connection, referral_id: str, note: str | None, *, actor: str,
                   now: datetime) -> None:
    """A person reached the patient: "contact needed" clears until a message fails (or is
    uncertain, or not sent) after `now`."""
    with conn.transaction():
        state = contact_store.lock_contact_state(conn, referral_id)
        if state is None:
            raise UnknownReferral(referral_id)
        contact_store.record_contact(conn, referral_id, now, actor, note)
        contacted_at = now if state.contacted_at is None else max(now, state.contacted_at)
        contact_store.refresh_contact_needed(conn, referral_id, contacted_at)
