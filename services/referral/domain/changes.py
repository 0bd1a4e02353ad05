"""What every change hands back to the caller: the new state, the slot
bookkeeping to apply, and the history entries to store."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .model import Id, Referral, Status

# Automatic decisions (booking on a triage decision, a freed slot, a raise).
SYSTEM_ACTOR = "system"

Action = Literal[
    "created",
    "report_linked",
    "raised_to_urgent",
    "booked",
    "moved",
    "cancelled",
    "completed",
]


@dataclass(frozen=True)
class HistoryEntry:
    """Who did what to a referral, when and why."""

    referral_id: Id
    actor: str
    action: Action
    from_status: Status | None  # None when the referral was just created
    to_status: Status
    at: datetime
    reason: str
    # Slot bookkeeping, so a "moved" entry says from where to where.
    from_slot_id: Id | None = None
    to_slot_id: Id | None = None


@dataclass(frozen=True)
class ReferralChange:
    """Apply in one transaction: store `referral`, append `history`, set
    `booked_slot_id`'s booked_by to the referral (only if still free: the
    database constraint is the backstop), clear `freed_slot_id`'s booked_by and
    then offer that slot to the waitlist (see allocation.offer_free_slot)."""

    referral: Referral
    history: tuple[HistoryEntry, ...]
    booked_slot_id: Id | None = None
    freed_slot_id: Id | None = None
    # The patient as the referral describes them changed (their language, on a link): the
    # FHIR Patient's version moves with it.
    patient_changed: bool = False
