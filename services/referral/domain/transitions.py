"""The referral state machine: every allowed move between statuses, and the
scheduler's commands built on it.

    waitlisted --book--> booked --move--> booked
    waitlisted|booked --cancel--> cancelled
    booked --complete--> completed
"""

from dataclasses import replace
from datetime import datetime

from .changes import HistoryEntry, ReferralChange
from .errors import (
    INVALID_TRANSITION,
    REASON_REQUIRED,
    SLOT_TAKEN,
    InvalidCommand,
    TransitionError,
)
from .model import BOOKED, CANCELLED, COMPLETED, OPEN_STATUSES, WAITLISTED, Referral, Slot


def _refuse(action: str, referral: Referral) -> TransitionError:
    return TransitionError(INVALID_TRANSITION, f"cannot {action} a {referral.status} referral")


def _require_free(slot: Slot, referral: Referral) -> None:
    if slot.booked_by == referral.referral_id:
        raise TransitionError(
            SLOT_TAKEN, f"the referral is already booked into slot {slot.slot_id}"
        )
    if not slot.is_free:
        raise TransitionError(SLOT_TAKEN, f"slot {slot.slot_id} is already booked")


def place_in_slot(
    referral: Referral, slot: Slot, *, now: datetime, actor: str, reason: str
) -> ReferralChange:
    """Book a waitlisted referral into a free slot, or move a booked one there.

    Holds no window rule: automatic callers check the window before calling,
    and a scheduler's choice is deliberately not held to it."""
    if referral.status not in OPEN_STATUSES:
        raise _refuse("reschedule", referral)
    _require_free(slot, referral)
    moved = replace(referral, status=BOOKED, slot_id=slot.slot_id)
    entry = HistoryEntry(
        referral_id=referral.referral_id,
        actor=actor,
        action="moved" if referral.status == BOOKED else "booked",
        from_status=referral.status,
        to_status=BOOKED,
        at=now,
        reason=reason,
        from_slot_id=referral.slot_id,
        to_slot_id=slot.slot_id,
    )
    return ReferralChange(
        referral=moved,
        history=(entry,),
        booked_slot_id=slot.slot_id,
        freed_slot_id=referral.slot_id,  # None when it was waitlisted
    )


def reschedule(referral: Referral, target_slot: Slot, now: datetime, *, actor: str) -> ReferralChange:
    """A scheduler books or moves a referral into a slot of their choice."""
    if referral.status == WAITLISTED:
        reason = f"booked by hand into slot {target_slot.slot_id}"
    else:
        reason = f"moved by hand from slot {referral.slot_id} to slot {target_slot.slot_id}"
    return place_in_slot(referral, target_slot, now=now, actor=actor, reason=reason)


def cancel(referral: Referral, reason: str, *, now: datetime, actor: str) -> ReferralChange:
    """Close an open referral; a booked one frees its slot for the waitlist."""
    if not reason or not reason.strip():
        raise InvalidCommand(REASON_REQUIRED, "a reason is required to cancel a referral")
    if referral.status not in OPEN_STATUSES:
        raise _refuse("cancel", referral)
    entry = HistoryEntry(
        referral_id=referral.referral_id,
        actor=actor,
        action="cancelled",
        from_status=referral.status,
        to_status=CANCELLED,
        at=now,
        reason=reason.strip(),
        from_slot_id=referral.slot_id,
    )
    return ReferralChange(
        referral=replace(referral, status=CANCELLED, slot_id=None),
        history=(entry,),
        freed_slot_id=referral.slot_id,
    )


def complete(referral: Referral, *, now: datetime, actor: str) -> ReferralChange:
    """The consult took place; the slot stays with the referral as a record."""
    if referral.status != BOOKED:
        raise _refuse("complete", referral)
    entry = HistoryEntry(
        referral_id=referral.referral_id,
        actor=actor,
        action="completed",
        from_status=BOOKED,
        to_status=COMPLETED,
        at=now,
        reason="the consult took place",
        from_slot_id=referral.slot_id,
        to_slot_id=referral.slot_id,
    )
    return ReferralChange(referral=replace(referral, status=COMPLETED), history=(entry,))
