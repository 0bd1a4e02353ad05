"""What a triage decision does to a patient's referrals.

Two steps so the caller only loads slots when they are needed:
`on_new_decision` says what to do, then `create_referral` (new referral) or
`place_within_window` (a raised one) picks the slot from what the caller loaded.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Iterable

from services.common.report_vocabulary import DEFAULT_LANGUAGE

from .allocation import choose_slot
from .changes import SYSTEM_ACTOR, HistoryEntry, ReferralChange
from .model import BOOKED, ROUTINE, URGENT, WAITLISTED, CareLevel, Id, Priority, Referral, Slot
from .transitions import place_in_slot
from .windows import DEFAULT_WINDOWS, Windows, priority_for, window_end


@dataclass(frozen=True)
class NothingToDo:
    reason: str


@dataclass(frozen=True)
class CreateReferral:
    """No open referral: load free slots starting in [created_at, window_ends_at]
    and call `create_referral`."""

    report_id: Id
    priority: Priority
    created_at: datetime
    window_ends_at: datetime


@dataclass(frozen=True)
class UpdateReferral:
    """Apply `change`. If `needs_placement`, then load the referral's current
    slot and the free slots starting in [now, window_ends_at] and call
    `place_within_window` with the changed referral."""

    change: ReferralChange
    needs_placement: bool


DecisionPlan = NothingToDo | CreateReferral | UpdateReferral


def on_new_decision(
    open_referral: Referral | None,
    care_level: CareLevel,
    report_id: Id,
    now: datetime,
    windows: Windows = DEFAULT_WINDOWS,
    language: str = DEFAULT_LANGUAGE,
) -> DecisionPlan:
    """`language`: the language the report was filled in (REPORT_LANGUAGES)."""
    priority = priority_for(care_level)
    if priority is None:
        return NothingToDo(f"care level {care_level} needs no referral")
    if open_referral is None:
        return CreateReferral(report_id, priority, now, window_end(priority, now, windows))
    if not open_referral.is_open:
        raise ValueError(f"expected an open referral, got a {open_referral.status} one")
    # Redelivered decisions must not link the same report twice.
    if report_id in open_referral.report_ids:
        return NothingToDo(f"report {report_id} is already linked to the open referral")

    status = open_referral.status
    # The patient's language is the newest linked report's: their own latest choice at the
    # kiosk, as intake's messages take the newest report's contact details and language
    # (docs/patient-messages.md). Name, MRN and birth date stay the first report's: they
    # identify the patient the referral was matched on, a language is only how to speak to them.
    referral = replace(open_referral, report_ids=open_referral.report_ids + (report_id,),
                       patient_language=language)
    history = [
        HistoryEntry(
            referral_id=referral.referral_id,
            actor=SYSTEM_ACTOR,
            action="report_linked",
            from_status=status,
            to_status=status,
            at=now,
            reason=f"{care_level} report {report_id} linked to the patient's open referral",
        )
    ]
    raise_it = priority == URGENT and open_referral.priority == ROUTINE
    if raise_it:
        # Never lengthen a window: if the routine one ends sooner, keep it.
        ends_at = min(open_referral.window_ends_at, window_end(URGENT, now, windows))
        referral = replace(referral, priority=URGENT, window_ends_at=ends_at)
        history.append(
            HistoryEntry(
                referral_id=referral.referral_id,
                actor=SYSTEM_ACTOR,
                action="raised_to_urgent",
                from_status=status,
                to_status=status,
                at=now,
                reason=f"urgent report {report_id}: the window now ends {ends_at.isoformat()}",
            )
        )
    change = ReferralChange(referral, tuple(history),
                            patient_changed=language != open_referral.patient_language)
    return UpdateReferral(change, needs_placement=raise_it)


def create_referral(
    plan: CreateReferral,
    *,
    referral_id: Id,
    patient_mrn: str,
    free_slots: Iterable[Slot],
    patient_birth_date: date | None = None,
    possible_duplicate_of: Referral | None = None,
    patient_language: str = DEFAULT_LANGUAGE,
) -> ReferralChange:
    """A new referral, booked into the earliest free slot of its window or waitlisted.

    `possible_duplicate_of` (patients.match_patient): an open referral with the same MRN
    and another or unknown birth date; the new referral is flagged against it (its id only:
    the history says why, naming neither patient)."""
    slot = choose_slot(free_slots, plan.created_at, plan.window_ends_at)
    if slot is None:
        status, slot_id = WAITLISTED, None
        reason = f"{plan.priority} referral: no free slot inside the window, waitlisted"
    else:
        status, slot_id = BOOKED, slot.slot_id
        reason = f"{plan.priority} referral: earliest free slot inside the window"
    duplicate_id = duplicate_mrn = None
    if possible_duplicate_of is not None:
        duplicate_id, duplicate_mrn = possible_duplicate_of.referral_id, possible_duplicate_of.patient_mrn
        reason += (f"; possible duplicate of referral {duplicate_id}: same MRN, "
                   + ("unknown birth date" if patient_birth_date is None
                      or possible_duplicate_of.patient_birth_date is None else "another birth date")
                   + ", so not linked (for a scheduler to review)")
    referral = Referral(
        referral_id=referral_id,
        patient_mrn=patient_mrn,
        priority=plan.priority,
        status=status,
        created_at=plan.created_at,
        window_ends_at=plan.window_ends_at,
        slot_id=slot_id,
        report_ids=(plan.report_id,),
        patient_birth_date=patient_birth_date,
        possible_duplicate_of=duplicate_id,
        possible_duplicate_mrn=duplicate_mrn,
        patient_language=patient_language,
    )
    entry = HistoryEntry(
        referral_id=referral_id,
        actor=SYSTEM_ACTOR,
        action="created",
        from_status=None,
        to_status=status,
        at=plan.created_at,
        reason=reason,
        to_slot_id=slot_id,
    )
    return ReferralChange(referral, (entry,), booked_slot_id=slot_id)


def place_within_window(
    referral: Referral, current_slot: Slot | None, free_slots: Iterable[Slot], now: datetime
) -> ReferralChange | None:
    """Bring an open referral inside its (possibly shortened) window.

    A waitlisted referral is booked into the earliest free slot of the window.
    A booked one whose appointment starts after the window end is moved there.
    None when nothing changes: already inside, or no free slot in the window
    (a booked referral then keeps its later appointment rather than losing it).
    """
    if referral.status == WAITLISTED:
        if current_slot is not None:
            raise ValueError("a waitlisted referral has no current slot")
        reason = f"earliest free slot inside the {referral.priority} window"
    elif referral.status == BOOKED:
        if current_slot is None or current_slot.slot_id != referral.slot_id:
            raise ValueError("current_slot must be the slot the referral is booked into")
        if current_slot.start <= referral.window_ends_at:
            return None
        reason = (
            f"appointment lay after the {referral.priority} window: "
            "moved to the earliest free slot inside it"
        )
    else:
        raise ValueError(f"cannot place a {referral.status} referral")

    target = choose_slot(free_slots, now, referral.window_ends_at)
    if target is None:
        return None
    return place_in_slot(referral, target, now=now, actor=SYSTEM_ACTOR, reason=reason)
