"""Referral worker: turns triage decisions into referrals and relays referral events; keeps
what intake told each patient (patient messages) for the queue's "contact needed"."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from services.common import envelope
from services.common import settings as settings_module
from services.common.db import pipelined
from services.common.inbox import BatchHandler, Delivery, PoisonEvent
from services.common.settings import TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES
from services.common.worker import run_worker

from . import booking, contact, contact_store, decision_batch, message_batch
from .domain import DEFAULT_WINDOWS
from . import store
from .events import DEFAULT_MAX_WINDOW_DAYS, parse_decision, parse_patient_message

# The retention purge (services/common/purge.py): closed referrals lose their patient's
# identity CLINIC_RETENTION_IDENTITY_DAYS after closing.
IDENTITY_PURGE = (store.pseudonymise_batch, "referral.referrals")


def on_decision(conn, event: dict, delivery: Delivery, *, now: datetime | None = None,
                max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> None:
    """One decision on its own, in the inbox transaction; any error rolls it back and the event
    is retried (a PoisonEvent: dead-lettered). `max_window_days`: CLINIC_REFERRAL_MAX_WINDOW_DAYS.
    The worker consumes decisions through decisions_handler, which does the same a run at a
    time (tests/integration/test_referral_decision_batch.py compares the two)."""
    decision = parse_decision(event, DEFAULT_WINDOWS, max_window_days)
    if decision.care_level == "self_care":
        return  # no referral, and (since issue 13) no patient identity in the event either
    # The window counts from when the referral is made, i.e. now, not from the decision.
    booking.apply_decision(conn, decision, now or datetime.now(UTC),
                           envelope.child_traceparent(delivery.traceparent))


def on_patient_message(conn, event: dict, delivery: Delivery) -> None:
    """One state of a message intake sent a patient (docs/patient-messages.md), in the inbox
    transaction; a late or repeated state changes nothing. The worker consumes messages
    through messages_handler, which does the same a run at a time
    (tests/integration/test_referral_message_batch.py compares the two)."""
    message = parse_patient_message(event)
    try:
        with pipelined(conn):  # the flag's update goes with the end of the handler, not on its own
            contact.record_message(conn, message)
    except contact_store.MessageOfAnotherReferral:
        raise PoisonEvent("patient message event data invalid: message_id: already known for another "
                          "referral_id") from None


def decisions_handler(max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> BatchHandler:
    """A poll's decisions checked one by one, then applied a run at a time (decision_batch):
    what on_decision does to each, in order, with new patients booked together."""
    return BatchHandler(prepare=partial(decision_batch.prepare, max_window_days=max_window_days),
                        write=decision_batch.write)


def messages_handler() -> BatchHandler:
    """A poll's patient messages checked one by one, then stored a run at a time
    (message_batch): four statements a run instead of four round trips a message."""
    return BatchHandler(prepare=message_batch.prepare, write=message_batch.write)


def handlers(max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> dict:
    """What the worker consumes: topic -> handler."""
    return {TOPIC_DECISIONS: decisions_handler(max_window_days), TOPIC_PATIENT_MESSAGES: messages_handler()}


def main() -> None:
    settings = settings_module.load("referral")
    run_worker(settings, migrations_package="services.referral",
               handlers=handlers(settings.referral_max_window_days),
               identity_purge=IDENTITY_PURGE)
