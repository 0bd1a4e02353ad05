"""Triage decisions a run at a time (issue 15): the worker's BatchHandler (services/common/
inbox.py) for `clinic.triage-decisions.v1`.

`prepare` checks one event (PoisonEvent when it is bad); `write` applies a run of them in the
caller's transaction with what booking.apply_decision would do to each, in order:
- self care: nothing;
- consecutive new patients (domain.first_meetings, then the database: the report is linked
  to no referral, no open referral has the MRN key) are booked together: their slots claimed
  in one statement (referral.claim_slots: for each window in order, the earliest free slot,
  as one claim after another would give), the ones left without a slot claimed again once
  under the waitlist lock (booking.py's concurrency notes) after the others were stored, then
  the referrals created by the domain policy are stored and announced in a few statements;
- any other decision (a report or patient met before, a possible duplicate) goes through
  booking.apply_decision on its own, between the runs before and after it.
The rules each decision fired ({id, reason}, as the event states them) are kept with its
report's link (referral_reports.fired, the FHIR ServiceRequest's reasonCode): in the links'
INSERT for new patients; for the others by an UPDATE that rides in the pipeline with the
decision's own statements (no wait of its own).
A race with another worker ends in a unique violation, which rolls the transaction back;
the inbox then applies the events one by one (BatchHandler called with one event).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from services.common import envelope, outbox
from services.common.db import pipelined
from services.common.inbox import Delivery
from services.common.settings import TOPIC_REFERRAL_EVENTS

from . import booking, contact_store, domain, events, store
from .domain import DEFAULT_WINDOWS, ReferralChange


@dataclass(frozen=True)
class Prepared:
    decision: events.Decision
    traceparent: str  # of the events this decision's changes write
    fired: tuple[dict, ...] | None = None  # the rules that fired, {"id", "reason"}; None: not stated


def prepare(event: dict, delivery: Delivery, *, max_window_days: int = events.DEFAULT_MAX_WINDOW_DAYS) -> Prepared:
    """One decision, checked; no I/O."""
    decision = events.parse_decision(event, DEFAULT_WINDOWS, max_window_days)
    return Prepared(decision, envelope.child_traceparent(delivery.traceparent), fired_rules(event["data"]))


def fired_rules(data: dict) -> tuple[dict, ...] | None:
    """The rules a decision's data says fired, id and reason only, in its order (parse_decision
    has checked each: a rule id, a reason string); None when the decision does not say."""
    fired = data.get("fired")
    return None if fired is None else tuple({"id": rule["id"], "reason": rule["reason"]} for rule in fired)


def write(conn: psycopg.Connection, prepared: list[Prepared], *, now: datetime | None = None) -> None:
    """Apply the decisions in order, in the caller's transaction (see the module docstring).
    The windows count from `now` (default: the time of the call), when the referrals are made."""
    now = now or datetime.now(UTC)
    todo = [p for p in prepared if p.decision.care_level != "self_care"]
    first = domain.first_meetings((p.decision.report_id, p.decision.patient_mrn) for p in todo)
    with pipelined(conn):
        at = 0
        while at < len(todo):
            end = at
            while end < len(todo) and first[end]:
                end += 1
            if end > at:
                at += _book_new_patients(conn, todo[at:end], now)
                if at == end:
                    continue
            # Not a new patient (met before in the run, or the database says so): on its
            # own, before the windows of the decisions after it are claimed.
            booking.apply_decision(conn, todo[at].decision, now, todo[at].traceparent)
            if todo[at].fired is not None:
                store.record_fired(conn, todo[at].decision.report_id, todo[at].fired)
            at += 1


def _book_new_patients(conn: psycopg.Connection, run: list[Prepared], now: datetime) -> int:
    """Book the leading new patients of `run` (first meetings in the run); how many were."""
    decisions = [p.decision for p in run]
    plans = [domain.on_new_decision(None, d.care_level, d.report_id, now, d.windows) for d in decisions]
    ids = [str(uuid.uuid4()) for _ in run]
    claims = store.claim_slots(conn, now, [plan.window_ends_at for plan in plans],
                               report_ids=[d.report_id for d in decisions],
                               patient_mrns=[d.patient_mrn for d in decisions], new_referral_ids=ids)
    count = sum(1 for claim in claims if claim.new_patient)
    if not count:
        return 0
    fired = {p.decision.report_id: p.fired for p in run[:count]}
    slots = {i: (claims[i].slot, claims[i].place) for i in range(count) if claims[i].slot is not None}
    changes: dict[int, ReferralChange] = {i: _created(plans[i], ids[i], decisions[i], slots[i][0]) for i in slots}
    unplaced = [i for i in range(count) if i not in slots]
    if unplaced:
        # Stored first, so that their slots are taken when the waitlist's claim looks.
        store.save_created(conn, [_to_save(changes[i], decisions[i]) for i in sorted(changes)], fired)
        store.lock_waitlist(conn)
        again = store.claim_slots(conn, now, [plans[i].window_ends_at for i in unplaced])
        for i, claim in zip(unplaced, again):
            if claim.slot is not None:
                slots[i] = (claim.slot, claim.place)
            changes[i] = _created(plans[i], ids[i], decisions[i], claim.slot)
        store.save_created(conn, [_to_save(changes[i], decisions[i]) for i in unplaced], fired)
    else:
        store.save_created(conn, [_to_save(changes[i], decisions[i]) for i in range(count)], fired)
    views = []
    for i in range(count):
        slot, place = slots.get(i, (None, None))
        views.append(store.created_referral_view(changes[i], patient_name=decisions[i].patient_name, slot=slot,
                                                 place=place, now=now))
    _announce(conn, [changes[i] for i in range(count)], views, [run[i].traceparent for i in range(count)])
    for i in range(count):
        # A patient message that came before its referral (never today, see booking).
        if claims[i].has_messages:
            contact_store.refresh_contact_needed(conn, ids[i], None)
    return count


def _created(plan: domain.CreateReferral, referral_id: str, decision: events.Decision,
             slot: domain.Slot | None) -> ReferralChange:
    return domain.create_referral(plan, referral_id=referral_id, patient_mrn=decision.patient_mrn,
                                  free_slots=[slot] if slot else [], patient_birth_date=decision.patient_birth_date,
                                  patient_language=decision.language)


def _to_save(change: ReferralChange, decision: events.Decision) -> tuple[ReferralChange, str, dict[str, str]]:
    return change, decision.patient_name, {decision.report_id: decision.care_level}


def _announce(conn: psycopg.Connection, changes: list[ReferralChange], views: list[dict],
              traceparents: list[str]) -> None:
    """The changes' events into the outbox in their order, in one statement (booking._announce's
    event and log line for each)."""
    announced = [events.change_event(c, v) for c, v in zip(changes, views)]
    conn.execute(
        f"WITH added AS (INSERT INTO {booking.SCHEMA}.outbox (event_id, topic, key, payload, traceparent)"
        "  SELECT event_id, %s, key, payload, traceparent"
        "  FROM unnest(%b::uuid[], %b::text[], %b::jsonb[], %b::text[]) WITH ORDINALITY"
        "   AS v (event_id, key, payload, traceparent, ordinal) ORDER BY ordinal)"
        " SELECT pg_notify(%s, '')",
        (TOPIC_REFERRAL_EVENTS, [e["id"] for e in announced], [v["report_id"] for v in views],
         [Jsonb(e) for e in announced], traceparents, outbox.outbox_channel(booking.SCHEMA)))
    for view, event in zip(views, announced):
        booking.log_change(view, event)
