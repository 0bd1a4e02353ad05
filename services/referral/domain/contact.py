"""Telling patients, as schedulers need it (docs/patient-messages.md): which state of a
message is the one to keep, and when a person must phone the patient. Pure.

Intake sends each message and publishes every state it reaches, with a `revision` that
grows; events may come late or twice, so the highest revision wins. A referral is
"contact needed" when one of its messages, as it now stands, is failed, uncertain or
not_sent and reached that state after a scheduler last marked the patient contacted.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

CHANGES = ("booked", "moved", "cancelled", "waitlisted")
CHANNELS = ("email", "sms", "phone")  # phone: no consented channel, a person must call
MESSAGE_STATUSES = ("queued", "sent", "failed", "uncertain", "not_sent")
# The states after which the patient may not know: a person has to reach them.
NEEDS_A_PERSON = frozenset({"failed", "uncertain", "not_sent"})


@dataclass(frozen=True)
class PatientMessage:
    """One message's state, as the `clinic.patient.message` event states it."""
    message_id: str
    referral_id: str
    report_id: str | None  # the report whose contact details intake used
    sequence: int          # the referral snapshot this message tells
    change: str            # CHANGES
    channel: str           # CHANNELS
    status: str            # MESSAGE_STATUSES
    detail: str | None
    attempts: int
    revision: int
    at: datetime           # when it reached this state
    callback_phone: str | None = None


def supersedes(incoming_revision: int, stored_revision: int | None) -> bool:
    """Whether an incoming state replaces the stored one: only a strictly newer revision
    does, so a late or repeated event changes nothing."""
    return stored_revision is None or incoming_revision > stored_revision


def contact_needed(messages: Iterable[PatientMessage], contacted_at: datetime | None) -> bool:
    """Any message failed, uncertain or not sent since the patient was last reached."""
    return any(m.status in NEEDS_A_PERSON and (contacted_at is None or m.at > contacted_at) for m in messages)


def callback_phone(messages: Iterable[PatientMessage]) -> str | None:
    """The phone to call the patient on: the one the newest message that gave one gave."""
    given = [m for m in messages if m.callback_phone]
    return max(given, key=lambda m: (m.at, m.revision)).callback_phone if given else None
