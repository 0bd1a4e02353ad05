"""Pure booking policy of the referral service: no I/O, no framework imports.

Callers load rows into these values, call one function, and apply the
`ReferralChange` it returns in one transaction (database constraints being
the backstop against races).
"""

from .allocation import (
    choose_slot,
    offer_free_slot,
    pick_waitlisted_for_slot,
    slot_order,
    waitlist_order,
)
from .changes import SYSTEM_ACTOR, HistoryEntry, ReferralChange
from .decisions import (
    CreateReferral,
    DecisionPlan,
    NothingToDo,
    UpdateReferral,
    create_referral,
    on_new_decision,
    place_within_window,
)
from .errors import (
    INVALID_TRANSITION,
    REASON_REQUIRED,
    SLOT_TAKEN,
    InvalidCommand,
    ReferralError,
    TransitionError,
)
from .model import (
    BOOKED,
    CANCELLED,
    COMPLETED,
    OPEN_STATUSES,
    ROUTINE,
    URGENT,
    WAITLISTED,
    Referral,
    Slot,
)
from .patients import PatientMatch, is_same_patient, match_patient, mrn_key
from .runs import first_meetings
from .transitions import cancel, complete, place_in_slot, reschedule
from .windows import DEFAULT_WINDOWS, Windows, is_breached, priority_for, slot_in_window, window_end

__all__ = [
    "BOOKED",
    "CANCELLED",
    "COMPLETED",
    "DEFAULT_WINDOWS",
    "INVALID_TRANSITION",
    "OPEN_STATUSES",
    "REASON_REQUIRED",
    "ROUTINE",
    "SLOT_TAKEN",
    "SYSTEM_ACTOR",
    "URGENT",
    "WAITLISTED",
    "CreateReferral",
    "DecisionPlan",
    "HistoryEntry",
    "InvalidCommand",
    "NothingToDo",
    "PatientMatch",
    "Referral",
    "ReferralChange",
    "ReferralError",
    "Slot",
    "TransitionError",
    "UpdateReferral",
    "Windows",
    "cancel",
    "choose_slot",
    "complete",
    "create_referral",
    "first_meetings",
    "is_breached",
    "is_same_patient",
    "match_patient",
    "mrn_key",
    "offer_free_slot",
    "on_new_decision",
    "pick_waitlisted_for_slot",
    "place_in_slot",
    "place_within_window",
    "priority_for",
    "reschedule",
    "slot_in_window",
    "slot_order",
    "window_end",
    "waitlist_order",
]
