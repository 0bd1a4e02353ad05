"""Automatic booking: which slot a referral gets, and which waiting referral
a newly free slot goes to."""

from datetime import datetime
from typing import Iterable

from .changes import SYSTEM_ACTOR, ReferralChange
from .model import URGENT, WAITLISTED, Referral, Slot
from .transitions import place_in_slot
from .windows import slot_in_window


def slot_order(slot: Slot) -> tuple:
    """Earliest first; the id only breaks ties, so repeated runs agree.
    str() because UUIDs render as fixed-width hex, which sorts like the number."""
    return (slot.start, str(slot.slot_id))


def waitlist_order(referral: Referral) -> tuple:
    """Urgent first, then oldest first; the id only breaks ties."""
    return (referral.priority != URGENT, referral.created_at, str(referral.referral_id))


def choose_slot(free_slots: Iterable[Slot], now: datetime, window_ends_at: datetime) -> Slot | None:
    """The earliest free slot starting inside [now, window_ends_at], or None.

    Slots already booked are skipped even if the caller passed them in."""
    eligible = [s for s in free_slots if s.is_free and slot_in_window(s, now, window_ends_at)]
    return min(eligible, key=slot_order, default=None)


def pick_waitlisted_for_slot(
    slot: Slot, waitlisted_referrals: Iterable[Referral], now: datetime
) -> Referral | None:
    """The waiting referral a free slot should go to, or None.

    Breached referrals never qualify: their window has closed, so no future
    slot lies in it; the contract leaves them to a scheduler."""
    if not slot.is_free:
        return None
    eligible = [
        r
        for r in waitlisted_referrals
        if r.status == WAITLISTED and slot_in_window(slot, now, r.window_ends_at)
    ]
    return min(eligible, key=waitlist_order, default=None)


def offer_free_slot(
    slot: Slot, waitlisted_referrals: Iterable[Referral], now: datetime
) -> ReferralChange | None:
    """Give an added or freed slot to the waitlist, if anyone's window holds it."""
    chosen = pick_waitlisted_for_slot(slot, waitlisted_referrals, now)
    if chosen is None:
        return None
    return place_in_slot(
        chosen,
        slot,
        now=now,
        actor=SYSTEM_ACTOR,
        reason=f"slot {slot.slot_id} became free inside the {chosen.priority} window",
    )
