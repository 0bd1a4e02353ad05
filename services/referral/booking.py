"""The referral use cases: load what the booking policy needs (locked), ask the policy,
store its answer and announce it through the outbox, all in the caller's transaction.

Concurrency, in short:
- A slot is claimed with FOR UPDATE SKIP LOCKED (workers pass over each other's slots)
  and the unique index on referrals.slot_id refuses a double booking outright; the
  worker lets that error roll back the event, which the consumer then retries.
- A patient is the same patient when the MRN (compared as domain.mrn_key) and the birth
  date match (domain.match_patient). The open referral a report joins is locked (and
  read again) before the report is linked to it; two first reports of one patient racing end in
  a unique violation on the open-referral index (MRN key, birth date), and the retry links
  the second report to the referral the first one created. Two first reports of
  *different* patients with one MRN racing cannot both stay unflagged: the index of
  unflagged open referrals per MRN key refuses the second, and its retry flags it as a
  possible duplicate of the first.
- Waitlisting a referral and adding/freeing a slot could pass each other unseen (each
  commits without seeing the other: a free slot beside a waitlisted referral that fits).
  Both sides therefore take one transaction-level advisory lock, and the side that is
  about to waitlist looks for a slot again once it holds it.
- Lock order, so that these paths cannot wait on each other in a circle. Offering a slot
  takes the waitlist lock, then the slot (one its own transaction freed or added), then waits
  for the first waitlisted referral's lock. So:
  - nobody waits for a slot's lock held by another: workers claim slots with SKIP LOCKED,
    and a scheduler's chosen slot is locked NOWAIT (refused as taken while someone is
    booking it), since a worker holding claimed slots may be waiting for the waitlist;
  - a scheduler's command takes the waitlist lock before the referral's: it may free a slot
    to offer, and must not hold a referral an offer waits for meanwhile; a worker moving a
    booked referral takes it before claiming the new slot.
  What is left (a worker moving a booked referral while a scheduler acts on that same
  referral) can still deadlock; PostgreSQL then aborts one, the API retries its command and
  the worker its event. (Scheduler commands are few; serialising them costs nothing measurable.)
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

import psycopg

from services.common import outbox
from services.common.db import pipelined
from services.common.settings import TOPIC_REFERRAL_EVENTS

from . import contact_store, domain, events, slot_store, store
from .domain import ReferralChange, TransitionError

log = logging.getLogger(__name__)

SCHEMA = "referral"
SLOT_IN_PAST = "slot_in_past"


class NotFound(LookupError):
    """Something the command names does not exist."""


class UnknownReferral(NotFound):
    pass


class UnknownSlot(NotFound):
    pass


class UnknownProvider(NotFound):
    pass


class SlotsOverlap(Exception):
    """New slots overlap stored ones: index of the new slot -> the stored slot it clashes with."""

    def __init__(self, clashes: dict[int, dict]):
        super().__init__(f"{len(clashes)} new slot(s) overlap existing ones")
        self.clashes = clashes


# -- applying a policy answer ---------------------------------------------------------
def _announce(conn: psycopg.Connection, change: ReferralChange, now: datetime, traceparent: str,
              view: dict | None = None) -> bool:
    """Write the change's event to the outbox; whether any patient message names the referral.
    `view`: the referral's view, when the caller knows it without a read (then: False)."""
    has_messages = False
    if view is None:
        view, has_messages = store.changed_referral_view(conn, change.referral.referral_id, now)
    event = events.change_event(change, view)
    with conn.cursor() as cur:
        outbox.add_event(cur, SCHEMA, topic=TOPIC_REFERRAL_EVENTS, key=view["report_id"], event=event,
                         traceparent=traceparent)
    log_change(view, event)
    return has_messages


def log_change(view: dict, event: dict) -> None:
    """The line every announced change logs. Ids only: no patient data in logs. Logged
    before commit; a rollback makes it a retry."""
    log.info("referral changed", extra={"referral_id": view["referral_id"], "event_type": event["type"],
                                        "sequence": view["sequence"], "status": view["status"]})


def _apply(conn: psycopg.Connection, change: ReferralChange, now: datetime, traceparent: str,
           **save) -> bool:
    """Store and announce one change; a slot it frees goes to the waitlist at once. Whether
    any patient message names the referral (_announce)."""
    store.save_change(conn, change, **save)
    has_messages = _announce(conn, change, now, traceparent)
    if change.freed_slot_id is not None:
        offer_slot(conn, change.freed_slot_id, now, traceparent)
    return has_messages


def offer_slot(conn: psycopg.Connection, slot_id: str, now: datetime, traceparent: str) -> ReferralChange | None:
    """Give a newly added or freed slot to the first waitlisted referral whose window holds it."""
    store.lock_waitlist(conn)
    slot = store.lock_slot(conn, slot_id)
    if slot is None or not slot.is_free:
        return None
    change = domain.offer_free_slot(slot, store.claim_waitlisted_for(conn, slot, now), now)
    if change is not None:
        _apply(conn, change, now, traceparent)
    return change


# -- triage decisions (worker) --------------------------------------------------------
def apply_decision(conn: psycopg.Connection, decision: events.Decision, now: datetime, traceparent: str) -> None:
    """Book, waitlist, link or raise for one triage decision, in the caller's transaction.

    In a pipeline: a statement whose result is not read (a lock, an insert, the event) goes
    with the next read, and only reads wait for the server."""
    with pipelined(conn):
        _apply_decision(conn, decision, now, traceparent)


def _apply_decision(conn: psycopg.Connection, decision: events.Decision, now: datetime, traceparent: str) -> None:
    # A new patient's referral is booked into the earliest free slot of its window: claimed
    # with the first reads, in their round trip, when they find no referral for the patient.
    priority = domain.priority_for(decision.care_level)
    new_window_ends_at = None if priority is None else domain.window_end(priority, now, decision.windows)
    referral_id = str(uuid.uuid4())  # if the decision makes a new referral
    context = store.decision_context(conn, decision.report_id, decision.patient_mrn, claim_from=now,
                                     claim_until=new_window_ends_at, new_referral_id=referral_id)
    if context.linked_to is not None:
        return  # this report was handled already (a decision replayed under a new event id)
    match = _match_patient(conn, decision, context.candidates)
    plan = domain.on_new_decision(match.same_patient, decision.care_level, decision.report_id, now,
                                  decision.windows, language=decision.language)
    levels = {decision.report_id: decision.care_level}
    if isinstance(plan, domain.NothingToDo):
        return
    if isinstance(plan, domain.CreateReferral):
        # Known without a read when the first round trip claimed for it: the new referral's
        # view (its slot's provider came with the claim) and whether a message names it.
        known = context.claimed and plan.created_at == now and plan.window_ends_at == new_window_ends_at
        if known:
            slot = context.slot
        else:  # the MRN's open referral is another patient's (a possible duplicate), or closed meanwhile
            slot = store.claim_free_slot(conn, now, plan.window_ends_at)
        if slot is None:
            store.lock_waitlist(conn)  # see the module docstring
            slot = store.claim_free_slot(conn, now, plan.window_ends_at)
            known = known and slot is None  # waitlisted, or booked into a slot whose provider is not read
        change = domain.create_referral(plan, referral_id=referral_id, patient_mrn=decision.patient_mrn,
                                        free_slots=[slot] if slot else [],
                                        patient_birth_date=decision.patient_birth_date,
                                        possible_duplicate_of=match.possible_duplicate_of,
                                        patient_language=decision.language)
        save = {"created": True, "patient_name": decision.patient_name, "care_levels": levels}
        if known:
            store.save_change(conn, change, **save)
            _announce(conn, change, now, traceparent, view=store.created_referral_view(
                change, patient_name=decision.patient_name, slot=slot, place=context.place, now=now))
            has_messages = context.has_messages
        else:
            has_messages = _apply(conn, change, now, traceparent, **save)
        # A patient message that came before its referral (robustness: intake tells only of
        # referral events, so never today) counts from now on. None: the flag's default
        # (false) is right, and nothing is read or written for it.
        if has_messages:
            contact_store.refresh_contact_needed(conn, change.referral.referral_id, None)
        return
    _apply(conn, plan.change, now, traceparent, care_levels=levels)
    if plan.needs_placement:
        _place_within_window(conn, plan.change.referral, now, traceparent)


def _match_patient(conn: psycopg.Connection, decision: events.Decision,
                   candidates: list[domain.Referral]) -> domain.PatientMatch:
    """The policy's match among the open referrals with the report's MRN (`candidates`, read
    already, at first), the one to join locked (and read after the lock). A referral closed
    meanwhile is looked for again."""
    for attempt in range(store.CLAIM_ATTEMPTS):
        if attempt:
            candidates = store.open_referrals_with_mrn(conn, decision.patient_mrn)
        match = domain.match_patient(candidates, decision.patient_birth_date)
        if match.same_patient is None:
            return match
        locked = store.lock_open_referral(conn, match.same_patient.referral_id)
        if locked is not None:
            return domain.match_patient([locked], decision.patient_birth_date)
    # Roll back; the consumer retries the event.
    raise RuntimeError("the patient's open referral kept closing while a report was being linked")


def _place_within_window(conn: psycopg.Connection, referral: domain.Referral, now: datetime,
                         traceparent: str) -> None:
    if referral.slot_id is not None:
        store.lock_waitlist(conn)  # a move frees the old slot for the waitlist: see the lock order
    current = store.get_slot(conn, referral.slot_id) if referral.slot_id else None
    slot = store.claim_free_slot(conn, now, referral.window_ends_at)
    change = domain.place_within_window(referral, current, [slot] if slot else [], now)
    if change is not None:
        _apply(conn, change, now, traceparent)


# -- schedulers' commands (API) -------------------------------------------------------
def _locked_referral(conn: psycopg.Connection, referral_id: str) -> domain.Referral:
    """The scheduler's referral, locked after the waitlist (the lock order above): the command
    may free a slot, which is then offered to the waitlist."""
    store.lock_waitlist(conn)
    referral = store.lock_referral(conn, referral_id)
    if referral is None:
        raise UnknownReferral(referral_id)
    return referral


def reschedule(conn: psycopg.Connection, referral_id: str, slot_id: str, *, actor: str, now: datetime,
               traceparent: str) -> None:
    """Book a waitlisted referral into a free slot, or move a booked one there (any window)."""
    try:
        with conn.transaction():
            referral = _locked_referral(conn, referral_id)
            slot = store.lock_slot(conn, slot_id, nowait=True)  # see the lock order
            if slot is None:
                raise UnknownSlot(slot_id)
            change = domain.reschedule(referral, slot, now, actor=actor)
            if slot.start < now:
                raise TransitionError(SLOT_IN_PAST, f"slot {slot_id} has already started")
            _apply(conn, change, now, traceparent)
    except psycopg.errors.LockNotAvailable:
        raise TransitionError(domain.SLOT_TAKEN, f"slot {slot_id} is being booked right now") from None
    except psycopg.errors.UniqueViolation:
        # Only reachable if a booking path forgot to lock the slot: the index still holds.
        raise TransitionError(domain.SLOT_TAKEN, f"slot {slot_id} is already booked") from None


def cancel(conn: psycopg.Connection, referral_id: str, reason: str, *, actor: str, now: datetime,
           traceparent: str) -> None:
    with conn.transaction():
        referral = _locked_referral(conn, referral_id)
        _apply(conn, domain.cancel(referral, reason, now=now, actor=actor), now, traceparent)


def complete(conn: psycopg.Connection, referral_id: str, *, actor: str, now: datetime, traceparent: str) -> None:
    with conn.transaction():
        referral = _locked_referral(conn, referral_id)
        _apply(conn, domain.complete(referral, now=now, actor=actor), now, traceparent)


# -- slots (admin, demo) --------------------------------------------------------------
NewSlot = tuple[str, datetime, datetime]  # (provider_id, start, end)


def add_slots(conn: psycopg.Connection, slots: list[NewSlot], *, now: datetime, traceparent: str,
              skip_existing: bool = False) -> list[str]:
    """Add slots, all or nothing, and offer each (earliest first) to the waitlist; their ids.

    skip_existing leaves out slots that overlap stored ones instead of refusing them all."""
    by_provider: dict[str, list[int]] = {}
    for index, (provider_id, _start, _end) in enumerate(slots):
        by_provider.setdefault(provider_id, []).append(index)
    with conn.transaction():
        for provider_id in by_provider:
            if slot_store.get_provider(conn, provider_id) is None:
                raise UnknownProvider(provider_id)
        # Also serialises slot additions, so the overlap check below cannot go stale.
        store.lock_waitlist(conn)
        if not skip_existing:
            clashes = {}
            for provider_id, indices in by_provider.items():
                found = slot_store.overlapping(conn, provider_id, [slots[i][1:] for i in indices])
                clashes.update({indices[k]: slot for k, slot in found.items()})
            if clashes:
                raise SlotsOverlap(clashes)
        added = []
        for provider_id, indices in by_provider.items():
            added += slot_store.insert_slots(conn, provider_id, [slots[i][1:] for i in indices],
                                             skip_existing=skip_existing)
        added.sort(key=lambda pair: (pair[1], pair[0]))
        for slot_id, _start in added:
            offer_slot(conn, slot_id, now, traceparent)
    return [slot_id for slot_id, _start in added]
